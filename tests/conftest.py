"""Shared fixtures: real databases, the app with its lifespan, and an HTTP client.

Every test that takes ``database_url`` (directly or through ``settings``, ``app``
or ``client``) runs once per backend in ACCOUNTS_TEST_DATABASES (default:
sqlite,postgresql). PostgreSQL comes from ACCOUNTS_TEST_POSTGRES_URL, which
``make test`` sets by starting a throwaway server; without it PostgreSQL tests are
skipped with the reason, and under CI=true that skip is a failure instead.
"""

from __future__ import annotations

import asyncio
import email.policy
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis
from aiosmtpd.controller import Controller
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from accounts import arena_cache
from accounts.bootstrap import Container
from accounts.db import migrate
from accounts.db.engine import Database, DatabaseConfig
from accounts.http.app import create_app
from accounts.settings import Settings
from tests.servers import free_port

BACKENDS = [
    name.strip()
    for name in os.environ.get("ACCOUNTS_TEST_DATABASES", "sqlite,postgresql").split(",")
    if name.strip()
]
POSTGRES_URL = os.environ.get("ACCOUNTS_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("ACCOUNTS_TEST_REDIS_URL")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# The suite runs under the allocator the server runs under (accounts/arena_cache.py).
arena_cache.install()
# Tables emptied between PostgreSQL tests; signing keys are kept, as generating
# an RSA key per test would only slow the suite.
DATA_TABLES = [
    "audit_events",
    "outbox_emails",
    "one_time_tokens",
    "refresh_tokens",
    "sessions",
    "users",
]


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def _run_in_thread(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run set-up coroutines for session fixtures, which may be requested while a
    test's event loop is already running in this thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()


async def _migrate(url: str) -> None:
    database = Database(DatabaseConfig(url=url))
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "accounts.db"
    _run_in_thread(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run, dropped at the end."""
    if not POSTGRES_URL:
        require_server("PostgreSQL", "ACCOUNTS_TEST_POSTGRES_URL", "scripts/postgres.sh")
    assert POSTGRES_URL is not None
    name = f"accounts_test_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        await _migrate(_with_database(POSTGRES_URL, name))

    async def drop() -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    _run_in_thread(create())
    yield _with_database(POSTGRES_URL, name)
    _run_in_thread(drop())


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "accounts.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        connection = await asyncpg.connect(_asyncpg_dsn(url))
        try:
            await connection.execute(f"TRUNCATE {', '.join(DATA_TABLES)} CASCADE")
        finally:
            await connection.close()
        return url
    raise ValueError(f"unknown backend in ACCOUNTS_TEST_DATABASES: {request.param}")


def require_server(name: str, variable: str, how: str) -> None:
    """Skip a test whose server is not configured; under CI, fail it instead."""
    reason = (
        f"{name} not configured: set {variable} or run `make test`, which starts one with {how}"
    )
    if IN_CI:
        pytest.fail(f"{reason} (a skip is a failure under CI)")
    pytest.skip(reason)


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """A Redis database emptied before the test (a throwaway server from scripts/redis.sh)."""
    if not REDIS_URL:
        require_server("Redis", "ACCOUNTS_TEST_REDIS_URL", "scripts/redis.sh")
    assert REDIS_URL is not None
    # Each pytest-xdist worker gets a Redis database of its own (gw0 -> 1, gw1 -> 2, ...),
    # since tests flush theirs.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    number = int(worker[2:]) + 1 if worker.startswith("gw") else 0
    url = f"{REDIS_URL.rsplit('/', 1)[0]}/{number}"
    client = redis.Redis.from_url(url)
    try:
        await client.flushdb()
        yield url
        await client.flushdb()
    finally:
        await client.aclose()


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "log_level": "warning",
        "database_pool_size": 20,
        "database_pool_timeout_seconds": 30,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    # Yield the app itself: LifespanManager.app is a wrapper without ``state``.
    async with LifespanManager(application):
        yield application


@pytest.fixture
def container(app: FastAPI) -> Container:
    built: Container = app.state.container
    return built


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse = False

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        if self.refuse:
            return "451 Requested action aborted: try again later"
        message = message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    async def wait_for(self, count: int, within: float = 10.0) -> list[EmailMessage]:
        """Wait until ``count`` messages arrived (bounded), and return them."""
        deadline = asyncio.get_running_loop().time() + within
        while len(self.messages) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} emails, got {len(self.messages)}")
            await asyncio.sleep(0.05)
        return self.messages


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@pytest.fixture
def mail_settings(database_url: str, smtp: tuple[SmtpSink, int]) -> Settings:
    """Settings that deliver email to the ``smtp`` sink, with links to http://testserver."""
    return make_settings(
        database_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        smtp_tls="none",
        public_url="http://testserver",
    )


@pytest.fixture
async def mail_app(mail_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(mail_settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def mail_client(mail_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose emails reach the ``smtp`` sink."""
    transport = httpx.ASGITransport(app=mail_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
