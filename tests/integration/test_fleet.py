"""Many instances: two real ``accounts serve`` processes on loopback, sharing one
PostgreSQL database and one Redis, driven over real HTTP.

What one instance counts or revokes, the other honours on the very next request:
login limits, logout, deactivation; and a token either one issues, the other
verifies (the signing keys live in the shared database). Also: SIGTERM lets the
requests a server is working on finish before it exits.

Needs ACCOUNTS_TEST_POSTGRES_URL and ACCOUNTS_TEST_REDIS_URL (skipped without them,
failed under CI). Each module run gets a fresh database, migrated with
``accounts migrate`` as an operator would, since ``serve`` refuses an unmigrated
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest
import redis.asyncio as redis

from tests.conftest import (
    POSTGRES_URL,
    REDIS_URL,
    _asyncpg_dsn,
    _run_in_thread,
    _with_database,
    free_port,
    require_server,
)
from tests.factories import PASSWORD, bearer
from tests.servers import scrubbed_env

COMMAND = [sys.executable, "-m", "accounts"]
STARTUP_SECONDS = 30.0
SHUTDOWN_SECONDS = 30.0
CLI_SECONDS = 60.0
LOGIN_LIMIT = 3
ADMIN_PASSWORD = "the fleet admin passphrase"
ME = "/api/v1/users/me"
LOGIN = "/api/v1/auth/login"


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@dataclass
class FleetDatabase:
    url: str
    admin_email: str


def run_cli(*args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [*COMMAND, *args],
        cwd=cwd,
        env=scrubbed_env(**settings),
        input="",
        capture_output=True,
        text=True,
        timeout=CLI_SECONDS,
        check=False,
    )


@pytest.fixture(scope="module")
def fleet_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetDatabase]:
    """A fresh PostgreSQL database, migrated by ``accounts migrate``, with one superuser."""
    if not POSTGRES_URL:
        require_server("PostgreSQL", "ACCOUNTS_TEST_POSTGRES_URL", "scripts/postgres.sh")
    assert POSTGRES_URL is not None
    name = f"accounts_fleet_{uuid.uuid4().hex[:12]}"
    url = _with_database(POSTGRES_URL, name)

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    _run_in_thread(execute(f'CREATE DATABASE "{name}"'))
    try:
        workdir = tmp_path_factory.mktemp("fleet-cli")
        migrated = run_cli("migrate", cwd=workdir, DATABASE_URL=url)
        assert migrated.returncode == 0, migrated.stderr
        admin_email = f"fleet-admin-{uuid.uuid4().hex[:8]}@example.com"
        created = run_cli(
            "create-admin",
            "--email",
            admin_email,
            "--name",
            "Fleet Admin",
            "--password",
            ADMIN_PASSWORD,
            cwd=workdir,
            DATABASE_URL=url,
        )
        assert created.returncode == 0, created.stderr
        yield FleetDatabase(url, admin_email)
    finally:
        _run_in_thread(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def spawn(name: str, workdir: Path, **settings: str) -> Server:
    """Start ``accounts serve`` on a free loopback port with exactly ``settings``."""
    port = free_port()
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603
            [*COMMAND, "serve", "--port", str(port)],
            cwd=workdir,
            env=scrubbed_env(LOG_LEVEL="warning", **settings),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return Server(name, process, f"http://127.0.0.1:{port}", log)


def wait_until_healthy(server: Server) -> None:
    """Poll /healthz (bounded) until it answers 200; fail if the process dies first."""
    deadline = time.monotonic() + STARTUP_SECONDS
    with httpx.Client(base_url=server.base_url, timeout=2) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(
                    f"{server.name} exited with {server.process.returncode}:\n{server.output()}"
                )
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    pytest.fail(f"{server.name} did not answer /healthz in {STARTUP_SECONDS} s:\n{server.output()}")


def kill(server: Server) -> None:
    if server.process.poll() is None:
        server.process.kill()
    server.process.wait(timeout=SHUTDOWN_SECONDS)


def flush_redis(url: str) -> None:
    async def flush() -> None:
        client = redis.Redis.from_url(url)
        try:
            await client.flushdb()
        finally:
            await client.aclose()

    _run_in_thread(flush())


@pytest.fixture(scope="module")
def fleet_redis_url() -> Iterator[str]:
    """The suite's Redis (as the ``redis_url`` fixture gives it), emptied before and after."""
    if not REDIS_URL:
        require_server("Redis", "ACCOUNTS_TEST_REDIS_URL", "scripts/redis.sh")
    assert REDIS_URL is not None
    flush_redis(REDIS_URL)
    yield REDIS_URL
    flush_redis(REDIS_URL)


@pytest.fixture(scope="module")
def servers(
    fleet_database: FleetDatabase,
    fleet_redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, Server]]:
    """Two servers (A and B) on the shared database and Redis, with a small login limit.

    Started once for the module (each test uses its own accounts); always killed."""
    workdir = tmp_path_factory.mktemp("fleet")
    settings = {
        "DATABASE_URL": fleet_database.url,
        "REDIS_URL": fleet_redis_url,
        "RATE_LIMIT_LOGIN_PER_IP_EMAIL": f"{LOGIN_LIMIT}/minute",
    }
    started: list[Server] = []
    try:
        for name in ("a", "b"):
            started.append(spawn(name, workdir, **settings))
        for server in started:
            wait_until_healthy(server)
        yield started[0], started[1]
    finally:
        for server in started:
            kill(server)
    for server in started:
        assert "Traceback" not in server.output(), server.output()


@dataclass
class Fleet:
    a: httpx.AsyncClient
    b: httpx.AsyncClient
    database: FleetDatabase


@pytest.fixture
async def fleet(
    servers: tuple[Server, Server], fleet_database: FleetDatabase
) -> AsyncIterator[Fleet]:
    for server in servers:
        assert server.process.poll() is None, server.output()
    async with (
        httpx.AsyncClient(base_url=servers[0].base_url, timeout=30) as a,
        httpx.AsyncClient(base_url=servers[1].base_url, timeout=30) as b,
    ):
        yield Fleet(a, b, fleet_database)


async def register(client: httpx.AsyncClient) -> str:
    email = f"fleet-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post(
        "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "Fleet User"}
    )
    assert response.status_code == 201, response.text
    return email


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(LOGIN, json={"email": email, "password": password})


async def tokens(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = await login(client, email, password)
    assert response.status_code == 200, response.text
    pair: dict[str, str] = response.json()
    return pair


async def warm(client: httpx.AsyncClient, access_token: str) -> None:
    for _ in range(3):
        response = await client.get(ME, headers=bearer(access_token))
        assert response.status_code == 200, response.text


# --- two instances ------------------------------------------------------------------------------


async def test_both_instances_are_ready_on_postgres_and_redis(fleet: Fleet) -> None:
    for client in (fleet.a, fleet.b):
        response = await client.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


async def test_a_login_limit_holds_across_the_two_servers(fleet: Fleet) -> None:
    email = await register(fleet.a)
    clients = [fleet.a, fleet.b] * LOGIN_LIMIT
    statuses = [(await login(client, email)).status_code for client in clients[:LOGIN_LIMIT]]

    refused = await login(clients[LOGIN_LIMIT], email)

    assert statuses == [200] * LOGIN_LIMIT
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers["ratelimit-limit"] == str(LOGIN_LIMIT)
    assert int(refused.headers["retry-after"]) >= 1


async def test_tokens_issued_by_a_verify_on_b(fleet: Fleet) -> None:
    email = await register(fleet.a)
    pair = await tokens(fleet.a, email)

    me = await fleet.b.get(ME, headers=bearer(pair["access_token"]))
    refreshed = await fleet.b.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )

    assert me.status_code == 200, me.text
    assert me.json()["email"] == email
    assert refreshed.status_code == 200, refreshed.text
    kid = jwt.get_unverified_header(pair["access_token"])["kid"]
    for client in (fleet.a, fleet.b):
        published = (await client.get("/.well-known/jwks.json")).json()
        assert kid in [key["kid"] for key in published["keys"]]


async def test_logout_on_a_is_401_on_a_warm_b(fleet: Fleet) -> None:
    email = await register(fleet.a)
    pair = await tokens(fleet.a, email)
    await warm(fleet.b, pair["access_token"])

    logout = await fleet.a.post(
        "/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}
    )
    assert logout.status_code == 204

    after = await fleet.b.get(ME, headers=bearer(pair["access_token"]))
    assert after.status_code == 401, after.text
    assert after.headers["www-authenticate"].startswith("Bearer")


async def test_deactivation_on_a_is_401_on_a_warm_b(fleet: Fleet) -> None:
    admin = await tokens(fleet.a, fleet.database.admin_email, ADMIN_PASSWORD)
    email = await register(fleet.a)
    pair = await tokens(fleet.b, email)
    await warm(fleet.b, pair["access_token"])
    user_id = (await fleet.b.get(ME, headers=bearer(pair["access_token"]))).json()["id"]

    deactivated = await fleet.a.patch(
        f"/api/v1/users/{user_id}",
        json={"is_active": False},
        headers=bearer(admin["access_token"]),
    )
    assert deactivated.status_code == 200, deactivated.text

    after = await fleet.b.get(ME, headers=bearer(pair["access_token"]))
    assert after.status_code == 401, after.text
    refresh = await fleet.b.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert refresh.status_code == 401


async def test_a_password_change_on_b_ends_the_other_session_on_a(fleet: Fleet) -> None:
    email = await register(fleet.a)
    on_a = await tokens(fleet.a, email)
    on_b = await tokens(fleet.b, email)
    await warm(fleet.a, on_a["access_token"])

    changed = await fleet.b.post(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=bearer(on_b["access_token"]),
    )
    assert changed.status_code == 204, changed.text

    assert (await fleet.a.get(ME, headers=bearer(on_a["access_token"]))).status_code == 401
    assert (await fleet.a.get(ME, headers=bearer(on_b["access_token"]))).status_code == 200


# --- SIGTERM ------------------------------------------------------------------------------------


IN_FLIGHT = 10


def send_login(base_url: str, email: str) -> http.client.HTTPConnection:
    """Open a connection and send a whole login request on it; the answer is read later."""
    address = httpx.URL(base_url)
    assert address.port is not None
    connection = http.client.HTTPConnection(address.host, address.port, timeout=SHUTDOWN_SECONDS)
    connection.request(
        "POST",
        LOGIN,
        body=json.dumps({"email": email, "password": PASSWORD}),
        headers={"Content-Type": "application/json"},
    )
    return connection


def read_answer(connection: http.client.HTTPConnection) -> tuple[int, dict[str, object]]:
    try:
        response = connection.getresponse()
        body = json.loads(response.read())
        return response.status, body
    finally:
        connection.close()


async def sessions_of(database_url: str, email: str) -> int:
    connection = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM sessions JOIN users ON users.id = sessions.user_id "
            "WHERE users.email = $1",
            email,
        )
        return int(count)
    finally:
        await connection.close()


async def test_sigterm_lets_in_flight_requests_finish(
    fleet_database: FleetDatabase, tmp_path: Path
) -> None:
    # Slower hashing makes each login take a while, and the hashing pool queues them.
    server = spawn(
        "graceful",
        tmp_path,
        DATABASE_URL=fleet_database.url,
        RATE_LIMITS="off",
        PASSWORD_HASH_TIME_COST="6",
    )
    try:
        await asyncio.to_thread(wait_until_healthy, server)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            email = await register(client)
        connections = [
            await asyncio.to_thread(send_login, server.base_url, email) for _ in range(IN_FLIGHT)
        ]
        # Wait (bounded) until the server is visibly working through them.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while (done := await sessions_of(fleet_database.url, email)) == 0:
            assert loop.time() < deadline, "the logins never started"
            await asyncio.sleep(0.01)
        assert done < IN_FLIGHT, "precondition: some logins must still be in flight"

        server.process.send_signal(signal.SIGTERM)

        answers = await asyncio.gather(
            *(asyncio.to_thread(read_answer, connection) for connection in connections)
        )
        returncode = await asyncio.to_thread(server.process.wait, SHUTDOWN_SECONDS)
    finally:
        kill(server)

    assert [status for status, _ in answers] == [200] * IN_FLIGHT
    assert all("access_token" in body for _, body in answers)
    assert await sessions_of(fleet_database.url, email) == IN_FLIGHT
    assert returncode in {0, -signal.SIGTERM}, server.output()
    assert "Traceback" not in server.output()
