"""Two instances of the service on one database and one Redis: what one does, the other
honours on its very next request.

Each test starts two apps (A and B) from the same settings, each with its own
lifespan, container and HTTP client, as two processes behind a load balancer would
be. B's cache is warmed first (and checked to be warm: a warm authenticated request
sends no SQL at all), so a passing revocation test proves the warm path still
notices the revocation, not merely that a cold path reads the database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import event

from accounts.bootstrap import Container
from accounts.http.app import create_app
from accounts.settings import Settings
from tests.conftest import SmtpSink, make_settings
from tests.factories import PASSWORD, Account, account, bearer, login, register, superuser
from tests.lifecycle_helpers import reset_mail

ME = "/api/v1/users/me"
LOGOUT = "/api/v1/auth/logout"
LOGIN = "/api/v1/auth/login"
NEW_PASSWORD = "a brand new passphrase"

Smtp = tuple[SmtpSink, int]


@dataclass
class Instance:
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def container(self) -> Container:
        built: Container = self.app.state.container
        return built


@asynccontextmanager
async def instance(settings: Settings, peer: str) -> AsyncIterator[Instance]:
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Instance(application, http)


@asynccontextmanager
async def two_instances(settings: Settings) -> AsyncIterator[tuple[Instance, Instance]]:
    # One client address per test, so that limits cannot collide with another test's.
    peer = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"
    async with instance(settings, peer) as a, instance(settings, peer) as b:
        yield a, b


def shared_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    return make_settings(database_url, redis_url=redis_url, **overrides)


@pytest.fixture
async def pair(database_url: str, redis_url: str) -> AsyncIterator[tuple[Instance, Instance]]:
    async with two_instances(shared_settings(database_url, redis_url)) as instances:
        yield instances


@contextmanager
def statements_sent(target: Instance) -> Iterator[list[str]]:
    """Every SQL statement ``target``'s engines send while the block runs, and every
    connection they hand out.

    The checkouts matter on PostgreSQL: the session check sends its statement on a
    pooled connection with asyncpg directly (db/session_check.py), where SQLAlchemy's
    cursor events never see it, but it must borrow the connection from the pool, or
    take one it kept from an earlier call (db/kept_connections.py).
    """
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(str(args[2]))

    def checked_out(*_args: Any) -> None:
        sent.append("<connection checked out>")

    database = target.container.database
    engines = {id(engine): engine for engine in (database.read_engine, database.write_engine)}
    pools = {id(engine.pool): engine.pool for engine in engines.values()}
    for engine in engines.values():
        event.listen(engine.sync_engine, "before_cursor_execute", record)
    for pool in pools.values():
        event.listen(pool, "checkout", checked_out)
    kept = database.kept
    handed_out = kept.handed_out if kept is not None else 0
    try:
        yield sent
    finally:
        if kept is not None:
            sent.extend(["<kept connection handed out>"] * (kept.handed_out - handed_out))
        for engine in engines.values():
            event.remove(engine.sync_engine, "before_cursor_execute", record)
        for pool in pools.values():
            event.remove(pool, "checkout", checked_out)


async def warm(target: Instance, token: str) -> None:
    """Use ``token`` on ``target`` until its answer comes from the cache (no SQL)."""
    first = await target.http.get(ME, headers=bearer(token))
    assert first.status_code == 200, first.text
    with statements_sent(target) as sent:
        second = await target.http.get(ME, headers=bearer(token))
    assert second.status_code == 200, second.text
    assert sent == [], "precondition: the second request should have been served warm"


async def me_status(target: Instance, token: str) -> int:
    return (await target.http.get(ME, headers=bearer(token))).status_code


# --- rate limits ---------------------------------------------------------------------------


async def test_a_login_limit_counted_on_a_holds_on_b(database_url: str, redis_url: str) -> None:
    settings = shared_settings(database_url, redis_url, rate_limit_login_per_ip_email="3/minute")
    async with two_instances(settings) as (a, b):
        user = await register(a.http)
        statuses = []
        for target in (a, b, a):
            response = await target.http.post(
                LOGIN, json={"email": user["email"], "password": PASSWORD}
            )
            statuses.append(response.status_code)

        refused = await b.http.post(LOGIN, json={"email": user["email"], "password": PASSWORD})

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.headers["ratelimit-limit"] == "3"
    assert int(refused.headers["retry-after"]) >= 1


async def test_the_account_lock_from_failures_on_a_holds_on_b(
    database_url: str, redis_url: str
) -> None:
    settings = shared_settings(
        database_url, redis_url, rate_limit_failed_logins_per_account="2/minute"
    )
    async with two_instances(settings) as (a, b):
        user = await account(a.http)
        for target in (a, b):
            response = await target.http.post(
                LOGIN, json={"email": user.email, "password": "not the passphrase"}
            )
            assert response.status_code == 401

        refused = await b.http.post(LOGIN, json={"email": user.email, "password": PASSWORD})
        also_refused = await a.http.post(LOGIN, json={"email": user.email, "password": PASSWORD})

    assert refused.status_code == 429, refused.text
    assert also_refused.status_code == 429, also_refused.text


# --- revocation on A is seen by a warm B -----------------------------------------------------


async def test_logout_on_a_is_401_on_a_warm_b(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    user = await account(a.http)
    await warm(b, user.access_token)

    logout = await a.http.post(LOGOUT, json={"refresh_token": user.refresh_token})
    assert logout.status_code == 204

    assert await me_status(b, user.access_token) == 401


async def test_bearer_logout_on_a_is_401_on_a_warm_b(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    user = await account(a.http)
    await warm(b, user.access_token)

    logout = await a.http.post(LOGOUT, headers=user.headers)
    assert logout.status_code == 204

    assert await me_status(b, user.access_token) == 401


async def test_revoking_a_session_on_a_is_401_on_a_warm_b(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    user = await account(a.http)
    other = await login(a.http, user.email)
    await warm(b, other["access_token"])
    sessions = (await a.http.get("/api/v1/auth/sessions", headers=user.headers)).json()
    (target,) = [session for session in sessions if not session["current"]]

    revoked = await a.http.delete(f"/api/v1/auth/sessions/{target['id']}", headers=user.headers)
    assert revoked.status_code == 204

    assert await me_status(b, other["access_token"]) == 401
    assert await me_status(b, user.access_token) == 200


async def test_deactivation_on_a_is_401_on_a_warm_b(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    admin = await superuser(a.http, a.container)
    user = await account(a.http)
    await warm(b, user.access_token)

    deactivated = await a.http.patch(
        f"/api/v1/users/{user.id}", json={"is_active": False}, headers=admin.headers
    )
    assert deactivated.status_code == 200, deactivated.text

    assert await me_status(b, user.access_token) == 401


async def test_deletion_on_a_is_401_on_a_warm_b(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    user = await account(a.http)
    second = await login(a.http, user.email)
    await warm(b, second["access_token"])

    deleted = await a.http.delete(ME, headers=user.headers)
    assert deleted.status_code == 204

    assert await me_status(b, second["access_token"]) == 401


async def test_deletion_by_a_superuser_on_a_is_401_on_a_warm_b(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    admin = await superuser(a.http, a.container)
    user = await account(a.http)
    await warm(b, user.access_token)

    deleted = await a.http.delete(f"/api/v1/users/{user.id}", headers=admin.headers)
    assert deleted.status_code == 204

    assert await me_status(b, user.access_token) == 401


async def test_a_password_change_on_a_ends_other_sessions_on_a_warm_b(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    user = await account(a.http)
    other = await login(a.http, user.email)
    await warm(b, other["access_token"])
    await warm(b, user.access_token)

    changed = await a.http.post(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=user.headers,
    )
    assert changed.status_code == 204, changed.text

    assert await me_status(b, other["access_token"]) == 401
    # The session that changed the password goes on.
    assert await me_status(b, user.access_token) == 200


async def test_a_password_reset_on_a_ends_every_session_on_a_warm_b(
    database_url: str, redis_url: str, smtp: Smtp
) -> None:
    sink, port = smtp
    settings = shared_settings(
        database_url,
        redis_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_tls="none",
        public_url="http://testserver",
    )
    async with two_instances(settings) as (a, b):
        user = await account(a.http)
        await warm(b, user.access_token)
        mail = await reset_mail(a.http, a.app, sink, user.email)

        reset = await a.http.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": mail.token, "new_password": NEW_PASSWORD},
        )
        assert reset.status_code == 204, reset.text

        assert await me_status(b, user.access_token) == 401


async def test_refresh_token_reuse_on_a_is_401_on_a_warm_b(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    user = await account(a.http)
    rotated = await a.http.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert rotated.status_code == 200
    new_access = rotated.json()["access_token"]
    await warm(b, new_access)

    reused = await a.http.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert reused.status_code == 401

    assert await me_status(b, new_access) == 401


async def test_a_demoted_superuser_on_a_loses_superuser_powers_on_b_at_once(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    first = await superuser(a.http, a.container)
    second = await superuser(a.http, a.container)
    for _ in range(2):
        listing = await b.http.get("/api/v1/users", headers=second.headers)
        assert listing.status_code == 200, listing.text
    await warm(b, second.access_token)

    demoted = await a.http.patch(
        f"/api/v1/users/{second.id}", json={"is_superuser": False}, headers=first.headers
    )
    assert demoted.status_code == 200, demoted.text

    refused = await b.http.get("/api/v1/users", headers=second.headers)
    assert refused.status_code == 403, refused.text
    me = await b.http.get(ME, headers=second.headers)
    assert me.json()["is_superuser"] is False


async def test_a_profile_change_on_a_shows_on_a_warm_b_at_once(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    user = await account(a.http)
    await warm(b, user.access_token)

    renamed = await a.http.patch(ME, json={"name": "Renamed On A"}, headers=user.headers)
    assert renamed.status_code == 200, renamed.text

    seen = await b.http.get(ME, headers=user.headers)
    assert seen.json()["name"] == "Renamed On A"


# --- Redis losing its data -------------------------------------------------------------------


async def flush(redis_url: str) -> None:
    """Empty the service's Redis database, as a restart without persistence would."""
    client = redis.Redis.from_url(redis_url)
    try:
        await client.flushdb()
        assert await client.dbsize() == 0
    finally:
        await client.aclose()


async def test_a_revoked_token_stays_revoked_after_redis_loses_its_data(
    pair: tuple[Instance, Instance], redis_url: str
) -> None:
    a, b = pair
    user = await account(a.http)
    await warm(b, user.access_token)
    assert (
        await a.http.post(LOGOUT, json={"refresh_token": user.refresh_token})
    ).status_code == 204

    await flush(redis_url)

    assert await me_status(b, user.access_token) == 401
    assert await me_status(a, user.access_token) == 401
    # Asked again after the misses refilled the cache: still revoked.
    assert await me_status(b, user.access_token) == 401


async def test_a_deactivated_user_stays_locked_out_after_redis_loses_its_data(
    pair: tuple[Instance, Instance], redis_url: str
) -> None:
    a, b = pair
    admin = await superuser(a.http, a.container)
    user = await account(a.http)
    await warm(b, user.access_token)
    deactivated = await a.http.patch(
        f"/api/v1/users/{user.id}", json={"is_active": False}, headers=admin.headers
    )
    assert deactivated.status_code == 200

    await flush(redis_url)

    assert await me_status(b, user.access_token) == 401
    assert await me_status(b, user.access_token) == 401


async def test_a_live_session_keeps_working_after_redis_loses_its_data(
    pair: tuple[Instance, Instance], redis_url: str
) -> None:
    a, b = pair
    user = await account(a.http)
    await warm(b, user.access_token)

    await flush(redis_url)

    assert await me_status(b, user.access_token) == 200
    assert await me_status(a, user.access_token) == 200


# --- the hot path -----------------------------------------------------------------------------


async def test_a_warm_me_on_b_sends_no_sql(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    user = await account(a.http)
    with statements_sent(b) as cold:
        first = await b.http.get(ME, headers=user.headers)
    with statements_sent(b) as warm_path:
        second = await b.http.get(ME, headers=user.headers)

    assert first.status_code == second.status_code == 200
    assert len(cold) >= 1
    assert warm_path == []
    assert second.json() == first.json()


async def test_state_cached_by_a_serves_b_without_sql(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    user = await account(a.http)
    assert await me_status(a, user.access_token) == 200

    # B has never seen this token: it verifies the signature itself, but the session
    # and user state come from the shared cache that A filled.
    with statements_sent(b) as sent:
        response = await b.http.get(ME, headers=user.headers)

    assert response.status_code == 200
    assert response.json()["id"] == user.id
    assert sent == []


async def test_a_forged_token_is_401_even_when_its_session_is_cached(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    user: Account = await account(a.http)
    await warm(b, user.access_token)
    header, payload, signature = user.access_token.split(".")
    flipped = ("A" if signature[10] != "A" else "B").join((signature[:10], signature[11:]))

    assert await me_status(b, f"{header}.{payload}.{flipped}") == 401
