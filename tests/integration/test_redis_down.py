"""Redis down: readiness says so, everything else keeps working from the database, and
login stays rate-limited (the limiter falls back to in-process counting).

These tests never touch the suite's shared Redis: each runs its own ``redis-server``
on a free loopback port (killed at the end), or points the service at a port where
nothing listens.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from accounts.http.app import create_app
from accounts.settings import Settings
from tests.conftest import free_port, make_settings
from tests.factories import PASSWORD, bearer, register

ME = "/api/v1/users/me"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
PROBLEM_JSON = "application/problem+json"
REDIS_SERVER = shutil.which("redis-server")
STARTUP_SECONDS = 10.0
# The breaker retries Redis 5 s after its last failure; allow for that and more.
RECOVERY_SECONDS = 20.0


def redis_options(port: int) -> list[str]:
    """Loopback only, nothing persisted (a restart comes back empty), in the foreground."""
    options = {"port": str(port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
    options["daemonize"] = "no"
    return [part for name, value in options.items() for part in (f"--{name}", value)]


class RedisServer:
    """A throwaway ``redis-server`` on a loopback port, which a test can kill and restart."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(  # noqa: S603
            [REDIS_SERVER, *redis_options(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def start(self) -> None:
        """Start the server and wait (bounded) until it answers PING."""
        self.spawn()
        assert self.process is not None
        deadline = asyncio.get_running_loop().time() + STARTUP_SECONDS
        while not await self.answers():
            assert self.process.poll() is None, "redis-server exited at start"
            assert asyncio.get_running_loop().time() < deadline, "redis-server did not start"
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    async def answers(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            return bool(await client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            await client.aclose()

    async def keys(self, pattern: str) -> list[str]:
        client = redis.Redis.from_url(self.url, decode_responses=True)
        try:
            return [str(key) for key in await client.keys(pattern)]
        finally:
            await client.aclose()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(free_port())
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def dead_redis_url() -> str:
    """A Redis URL where nothing listens (a server that is down)."""
    return f"redis://127.0.0.1:{free_port()}/0"


@asynccontextmanager
async def serving(settings: Settings, peer: str = "10.0.0.5") -> AsyncIterator[httpx.AsyncClient]:
    application: FastAPI = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def down_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    return make_settings(database_url, redis_url=redis_url, **overrides)


def assert_redis_not_ready(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == 503
    assert "redis" in body["detail"]
    assert body["checks"] == {"database": "ok", "redis": "unavailable"}


async def session_flow(http: httpx.AsyncClient) -> list[int]:
    """Register, log in, use, refresh and log out; the statuses, in order."""
    statuses: list[int] = []
    email = f"nored-{uuid.uuid4().hex[:10]}@example.com"
    registered = await http.post(
        "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "No Redis"}
    )
    statuses.append(registered.status_code)
    logged_in = await http.post(LOGIN, json={"email": email, "password": PASSWORD})
    statuses.append(logged_in.status_code)
    pair = logged_in.json()
    for _ in range(2):
        statuses.append((await http.get(ME, headers=bearer(pair["access_token"]))).status_code)
    refreshed = await http.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    statuses.append(refreshed.status_code)
    new_pair = refreshed.json()
    statuses.append((await http.get(ME, headers=bearer(new_pair["access_token"]))).status_code)
    logout = await http.post(LOGOUT, json={"refresh_token": new_pair["refresh_token"]})
    statuses.append(logout.status_code)
    statuses.append((await http.get(ME, headers=bearer(new_pair["access_token"]))).status_code)
    return statuses


FLOW_STATUSES = [201, 200, 200, 200, 200, 200, 204, 401]


# --- Redis unreachable from the start ---------------------------------------------------------


async def test_readyz_is_503_naming_redis_when_redis_is_down(
    database_url: str, dead_redis_url: str
) -> None:
    async with serving(down_settings(database_url, dead_redis_url)) as http:
        response = await http.get("/readyz")

    assert_redis_not_ready(response)


async def test_healthz_is_200_when_redis_is_down(database_url: str, dead_redis_url: str) -> None:
    async with serving(down_settings(database_url, dead_redis_url)) as http:
        response = await http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_register_login_me_refresh_logout_work_without_redis(
    database_url: str, dead_redis_url: str
) -> None:
    async with serving(down_settings(database_url, dead_redis_url)) as http:
        statuses = await session_flow(http)

    assert statuses == FLOW_STATUSES


async def test_login_stays_rate_limited_without_redis(
    database_url: str, dead_redis_url: str
) -> None:
    settings = down_settings(database_url, dead_redis_url, rate_limit_login_per_ip_email="3/minute")
    async with serving(settings) as http:
        user = await register(http)
        statuses = [
            (
                await http.post(LOGIN, json={"email": user["email"], "password": PASSWORD})
            ).status_code
            for _ in range(4)
        ]
        refused = await http.post(LOGIN, json={"email": user["email"], "password": PASSWORD})

    assert statuses == [200, 200, 200, 429]
    assert refused.status_code == 429
    assert refused.headers["ratelimit-limit"] == "3"
    assert int(refused.headers["retry-after"]) >= 1


async def test_the_account_lock_still_holds_without_redis(
    database_url: str, dead_redis_url: str
) -> None:
    settings = down_settings(
        database_url, dead_redis_url, rate_limit_failed_logins_per_account="2/minute"
    )
    async with serving(settings) as http:
        user = await register(http)
        for _ in range(2):
            failed = await http.post(LOGIN, json={"email": user["email"], "password": "wrong one!"})
            assert failed.status_code == 401

        refused = await http.post(LOGIN, json={"email": user["email"], "password": PASSWORD})

    assert refused.status_code == 429, refused.text


async def test_revocation_is_seen_by_another_instance_while_redis_is_down(
    database_url: str, dead_redis_url: str
) -> None:
    settings = down_settings(database_url, dead_redis_url)
    async with serving(settings) as a, serving(settings) as b:
        user = await register(a)
        pair = (await a.post(LOGIN, json={"email": user["email"], "password": PASSWORD})).json()
        for _ in range(2):
            assert (await b.get(ME, headers=bearer(pair["access_token"]))).status_code == 200

        logout = await a.post(LOGOUT, json={"refresh_token": pair["refresh_token"]})
        assert logout.status_code == 204

        after = await b.get(ME, headers=bearer(pair["access_token"]))

    assert after.status_code == 401


# --- Redis dying under a running service, and coming back --------------------------------------


async def test_readyz_turns_503_when_a_running_redis_dies(
    database_url: str, redis_server: RedisServer
) -> None:
    await redis_server.start()
    async with serving(down_settings(database_url, redis_server.url)) as http:
        before = await http.get("/readyz")
        redis_server.kill()

        after = await http.get("/readyz")

    assert before.status_code == 200, before.text
    assert before.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert_redis_not_ready(after)


async def test_requests_keep_working_when_a_running_redis_dies(
    database_url: str, redis_server: RedisServer
) -> None:
    await redis_server.start()
    settings = down_settings(database_url, redis_server.url)
    async with serving(settings) as http:
        # Warm every Redis use first: the limiter, the session cache.
        assert await session_flow(http) == FLOW_STATUSES
        redis_server.kill()

        statuses = await session_flow(http)

    assert statuses == FLOW_STATUSES


async def test_a_warm_session_is_still_revoked_when_redis_dies_before_the_logout(
    database_url: str, redis_server: RedisServer
) -> None:
    await redis_server.start()
    async with serving(down_settings(database_url, redis_server.url)) as http:
        user = await register(http)
        pair = (await http.post(LOGIN, json={"email": user["email"], "password": PASSWORD})).json()
        for _ in range(2):
            assert (await http.get(ME, headers=bearer(pair["access_token"]))).status_code == 200
        redis_server.kill()

        logout = await http.post(LOGOUT, json={"refresh_token": pair["refresh_token"]})
        after = await http.get(ME, headers=bearer(pair["access_token"]))

    assert logout.status_code == 204
    assert after.status_code == 401


async def test_login_stays_rate_limited_when_a_running_redis_dies(
    database_url: str, redis_server: RedisServer
) -> None:
    await redis_server.start()
    settings = down_settings(
        database_url, redis_server.url, rate_limit_login_per_ip_email="3/minute"
    )
    async with serving(settings) as http:
        user = await register(http)
        redis_server.kill()
        statuses = [
            (
                await http.post(LOGIN, json={"email": user["email"], "password": PASSWORD})
            ).status_code
            for _ in range(4)
        ]

    assert statuses == [200, 200, 200, 429]


async def test_after_redis_restarts_readyz_is_200_and_redis_is_used_again(
    database_url: str, redis_server: RedisServer
) -> None:
    await redis_server.start()
    # Each flow registers an account: let the polling below register freely.
    settings = down_settings(
        database_url,
        redis_server.url,
        rate_limit_register_per_ip="1000/hour",
        rate_limit_login_per_ip="1000/minute",
        rate_limit_refresh_per_ip="1000/minute",
    )
    async with serving(settings) as http:
        redis_server.kill()
        assert await session_flow(http) == FLOW_STATUSES
        assert (await http.get("/readyz")).status_code == 503

        await redis_server.start()  # the same port, empty

        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECOVERY_SECONDS
        while (ready := await http.get("/readyz")).status_code != 200:
            assert loop.time() < deadline, ready.text
            await asyncio.sleep(0.2)
        assert ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}

        # Once the breaker closes, the service writes to Redis again: requests keep
        # succeeding meanwhile, and soon the limiter and the session cache show up there.
        statuses: list[int] = []
        while True:
            statuses.extend(await session_flow(http))
            limits_keys = await redis_server.keys("accounts-rl*")
            cache_keys = await redis_server.keys("accounts:*")
            if limits_keys and cache_keys:
                break
            assert loop.time() < deadline, "the service never went back to Redis"
            await asyncio.sleep(0.2)

    assert statuses == FLOW_STATUSES * (len(statuses) // len(FLOW_STATUSES))
