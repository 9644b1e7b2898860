"""Faults: PostgreSQL stopped hard under load, an exhausted connection pool, Redis
stopped and restarted, and the server killed with SIGKILL mid-load.

The service must answer a fault with a 503 problem (never a 500, never a hang),
recover by itself when the fault ends, and never lose an acknowledged write or leave
a half-written one behind.

This module runs its own servers on loopback and stops them hard, so it never
touches the suite's shared PostgreSQL (54329) or Redis (63799):

* its own PostgreSQL on a free port, set up the way ``scripts/postgres.sh`` does it
  (same binaries, same data directory naming, ``nobody`` when running as root,
  ``scripts/postgres.sh stop`` to clean up) except for one setting:
  ``synchronous_commit`` is on. The script turns it off for speed, and with it off
  PostgreSQL itself may forget commits it acknowledged when it is stopped with
  ``-m immediate`` (WAL still in shared memory), which would blame the service for
  a loss it did not cause. ``fsync`` stays off: the processes die, the kernel does
  not, so written WAL survives.
* its own ``redis-server`` on a free port, killed and restarted on the same port.
* ``accounts serve`` processes (a scrubbed environment: no inherited ACCOUNTS_*),
  in their own process group so that SIGKILL reaches every one of their processes.

Each scenario runs once (a module fixture, in a thread of its own with its own event
loop) and records what it saw; the tests below each check one behaviour of it.
Every wait is bounded, and every process started here is killed in a ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import redis.asyncio as redis
from argon2 import PasswordHasher as Argon2
from argon2.exceptions import InvalidHashError, VerificationError
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from accounts.bootstrap import Container
from accounts.db import migrate
from accounts.db.engine import Database, DatabaseConfig
from accounts.http.app import create_app
from tests.conftest import BACKENDS, IN_CI, free_port, make_settings
from tests.factories import PASSWORD, bearer
from tests.servers import scrubbed_env

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
POSTGRES_SCRIPT = REPO / "scripts" / "postgres.sh"
# Where scripts/postgres.sh finds the binaries and keeps the data: mirrored here.
PG_BIN = Path(
    os.environ.get("PG_BIN") or Path(shutil.which("pg_ctl") or "/usr/local/bin/pg_ctl").parent
)
PG_TMP = Path(os.environ.get("TMPDIR") or "/tmp")  # noqa: S108 - the script's ${TMPDIR:-/tmp}
REDIS_SERVER = shutil.which("redis-server")
COMMAND = [sys.executable, "-m", "accounts"]

USERS = "/api/v1/users"
ME = "/api/v1/users/me"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
PROBLEM_JSON = "application/problem+json"

# A request answered later than this during a fault counts as a violation...
FAULT_ANSWER_SECONDS = 5.0
# ...and one still unanswered after this has hung (the client gives up).
CLIENT_TIMEOUT_SECONDS = 10.0
# The pool waits 1 s for a connection; allow for hashing and a loaded machine.
POOL_ANSWER_SECONDS = 3.0
PG_RECOVERY_SECONDS = 10.0
REDIS_RECOVERY_SECONDS = 15.0
STARTUP_SECONDS = 30.0
COMMAND_SECONDS = 120.0
LOAD_WORKERS = 6
# Every load loop stops by itself after this, whatever happens to the scenario.
LOAD_MAX_SECONDS = 90.0
# Generous limits: the limiter is exercised (and must fall back when Redis is away),
# but a loop from one address never reaches them.
GENEROUS_LIMITS = {
    "rate_limits": "on",
    "rate_limit_login_per_ip_email": "100000/minute",
    "rate_limit_login_per_ip": "100000/minute",
    "rate_limit_failed_logins_per_account": "100000/minute",
    "rate_limit_register_per_ip": "100000/hour",
    "rate_limit_refresh_per_ip": "100000/minute",
}


# --------------------------------------------------------------------------- helpers


def require_binary(name: str, present: bool, how: str) -> None:
    """Skip a test whose server binaries are missing; under CI, fail it instead."""
    if present:
        return
    reason = f"{name} is not installed: {how}"
    if IN_CI:
        pytest.fail(f"{reason} (a skip is a failure under CI)")
    pytest.skip(reason)


def run_in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a scenario on an event loop of its own (module fixtures are synchronous)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def run(command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a command to completion (bounded); its output, or an error that shows it."""
    done = subprocess.run(  # noqa: S603 - our own fixed commands
        command,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )
    output = (done.stdout + done.stderr).decode(errors="replace")
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n{output}")
    return output


def service_env(database_url: str, **settings: str) -> dict[str, str]:
    """A server's environment: this database, rate limits off unless ``settings`` say."""
    defaults = {"rate_limits": "off", "log_level": "warning"}
    return scrubbed_env(database_url=database_url, **{**defaults, **settings})


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def token_hash(token: str) -> str:
    """How the service stores a refresh token (SHA-256 hex), to find it in the table."""
    return hashlib.sha256(token.encode()).hexdigest()


async def fetch(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one query, straight from the database (no service code in between)."""
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[1]

        def query() -> list[tuple[Any, ...]]:
            with contextlib.closing(sqlite3.connect(path)) as connection:
                return [tuple(row) for row in connection.execute(sql).fetchall()]

        return await asyncio.to_thread(query)
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return [tuple(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


# ------------------------------------------------------------------------ PostgreSQL


def as_db_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as ``nobody`` (as the script does)."""
    return ["runuser", "-u", "nobody", "--", *command] if os.geteuid() == 0 else command


class Postgres:
    """A PostgreSQL server of this module's own, which tests may stop with -m immediate."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.data = PG_TMP / f"accounts-pg-{port}"
        self.pg_ctl = str(PG_BIN / "pg_ctl")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def create(self) -> None:
        """A fresh cluster (initdb), started: scripts/postgres.sh start, durable commits."""
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.data, "nobody", "nogroup")
        self.data.chmod(0o700)
        initdb = str(PG_BIN / "initdb")
        run(
            as_db_user(
                [
                    initdb,
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            )
        )
        self.start()

    def start(self) -> None:
        """Start (or restart, after a hard stop) on the same data directory and port."""
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
            " -c max_connections=300 -c fsync=off -c synchronous_commit=on"
            " -c full_page_writes=off"
        )
        log = str(self.data / "server.log")
        run(
            as_db_user(
                [
                    self.pg_ctl,
                    "-D",
                    str(self.data),
                    "-l",
                    log,
                    "-w",
                    "-t",
                    "60",
                    "start",
                    "-o",
                    options,
                ]
            )
        )

    def stop_hard(self) -> None:
        """Stop at once, as a crash would: no checkpoint, backends killed mid-query."""
        run(as_db_user([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"]))

    def is_running(self) -> bool:
        command = as_db_user([self.pg_ctl, "-D", str(self.data), "status"])
        done = subprocess.run(command, capture_output=True, timeout=COMMAND_SECONDS, check=False)  # noqa: S603
        return done.returncode == 0

    def ensure_running(self) -> None:
        if not self.is_running():
            self.start()

    def destroy(self) -> None:
        env = {**os.environ, "ACCOUNTS_PG_PORT": str(self.port), "PG_BIN": str(PG_BIN)}
        run([str(POSTGRES_SCRIPT), "stop"], env=env)

    async def create_database(self) -> str:
        """A new empty database on this server; its SQLAlchemy URL."""
        name = f"faults_{uuid.uuid4().hex[:12]}"
        connection = await asyncpg.connect(asyncpg_dsn(self.url()))
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return self.url(name)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """This module's own PostgreSQL, on a free port; removed at the end."""
    present = (PG_BIN / "pg_ctl").is_file() and (PG_BIN / "initdb").is_file()
    require_binary("PostgreSQL", present, f"no pg_ctl/initdb in {PG_BIN} (set PG_BIN)")
    server = Postgres(free_port())
    try:
        server.create()
        yield server
    finally:
        server.destroy()


async def migrated_postgres_database(postgres: Postgres, workdir: Path) -> str:
    """A fresh database, migrated with ``accounts migrate`` as an operator would."""
    await asyncio.to_thread(postgres.ensure_running)
    url = await postgres.create_database()
    await asyncio.to_thread(run, [*COMMAND, "migrate"], env=service_env(url), cwd=workdir)
    return url


# ----------------------------------------------------------------------------- Redis


class RedisServer:
    """A ``redis-server`` of this module's own, in the foreground, killed and restarted."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        assert REDIS_SERVER is not None
        options = {"port": str(self.port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
        options["dir"] = str(self.workdir)
        arguments = [part for name, value in options.items() for part in (f"--{name}", value)]
        self.process = subprocess.Popen(  # noqa: S603
            [REDIS_SERVER, *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def start(self) -> None:
        """Start (on the same port each time) and wait (bounded) until it answers PING."""
        self.spawn()
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while not await self.answers():
            assert self.process.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            await asyncio.to_thread(self.process.wait, 10)
            self.process = None

    async def answers(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(await client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            await client.aclose()

    async def keys(self) -> list[str]:
        client = redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=2)
        try:
            return [str(key) for key in await client.keys("*")]
        finally:
            await client.aclose()


# ---------------------------------------------------------------------------- server


class Server:
    """``accounts serve`` in a process group of its own, on a fixed loopback port."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(  # noqa: S603
                [*COMMAND, "serve", "--port", str(self.port)],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def start(self) -> None:
        """Start (on the same port each time) and wait (bounded) until /healthz answers 200."""
        self.spawn()
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"server exited at start:\n{self.output()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError(f"server did not answer within {STARTUP_SECONDS} s:\n{self.output()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def kill(self) -> None:
        """SIGKILL the whole process group (the server and anything it started)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        await asyncio.to_thread(self.process.wait, 10)
        self.process = None

    def output(self, tail: int | None = 6000) -> str:
        """What the server wrote (the last ``tail`` characters; all with None)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text if tail is None else text[-tail:]


# ------------------------------------------------------------------------------ load


@dataclass
class Outcome:
    """One request of the load: what was asked, when, and what came back."""

    op: str
    started: float
    finished: float
    status: int | None = None
    content_type: str = ""
    retry_after: str | None = None
    body: str = ""
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self, origin: float = 0.0) -> str:
        when = f"t={self.started - origin:+.2f}s"
        if self.error is not None:
            return f"{self.op} {when} after {self.seconds:.2f}s: {self.error}"
        return (
            f"{self.op} {when} -> {self.status} in {self.seconds:.2f}s "
            f"[{self.content_type}; Retry-After={self.retry_after}] {self.body[:200]}"
        )


def is_503_problem(outcome: Outcome) -> bool:
    return (
        outcome.status == 503
        and outcome.content_type.startswith(PROBLEM_JSON)
        and outcome.retry_after is not None
        and '"status":503' in outcome.body.replace(" ", "")
    )


def sample(outcomes: list[Outcome], origin: float, limit: int = 8) -> str:
    lines = [outcome.describe(origin) for outcome in outcomes[:limit]]
    more = f"\n  ... and {len(outcomes) - limit} more" if len(outcomes) > limit else ""
    return "\n  " + "\n  ".join(lines) + more


def logged_errors(log: str) -> str:
    """What the server logged as errors, by event and final exception, with counts."""
    counts: Counter[str] = Counter()
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            counts[f"(not JSON) {line[:200]}"] += 1
            continue
        if not isinstance(record, dict) or record.get("level") not in {"error", "critical"}:
            continue
        raised = [
            entry
            for entry in str(record.get("exception", "")).splitlines()
            if entry and not entry[0].isspace() and not entry.startswith(("Traceback", "The above"))
        ]
        where = record.get("path") or ""
        counts[f"{record.get('event')} {where} {raised[-1][:200] if raised else ''}"] += 1
    if not counts:
        return "no errors"
    return "".join(f"\n  {count} x {what}" for what, count in counts.most_common(10))


@dataclass
class Account:
    email: str
    access_token: str
    refresh_token: str


async def seed_account(client: httpx.AsyncClient) -> Account:
    """Register and log in (before any fault): an account the load can read with."""
    email = f"seed-{uuid.uuid4().hex[:12]}@example.com"
    registered = await client.post(
        USERS, json={"email": email, "password": PASSWORD, "name": "Seed"}
    )
    assert registered.status_code == 201, registered.text
    logged_in = await client.post(LOGIN, json={"email": email, "password": PASSWORD})
    assert logged_in.status_code == 200, logged_in.text
    pair = logged_in.json()
    return Account(email, pair["access_token"], pair["refresh_token"])


@dataclass
class WorkerState:
    step: int
    refresh_token: str | None = None


class Load:
    """A bounded loop of concurrent requests, recording every outcome and every
    acknowledged write (a 201 registration, a 200 login or refresh)."""

    def __init__(
        self, client: httpx.AsyncClient, seeds: list[Account], ops: tuple[str, ...]
    ) -> None:
        self.client = client
        self.ops = ops
        self.tokens = [seed.access_token for seed in seeds]
        self.accounts = [seed.email for seed in seeds]
        self.registered: list[str] = []
        self.refresh_tokens: list[str] = []
        self.outcomes: list[Outcome] = []
        self.in_flight = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        await asyncio.gather(*(self._worker(WorkerState(step=i)) for i in range(LOAD_WORKERS)))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    def between(self, start: float, end: float) -> list[Outcome]:
        """Outcomes of requests sent at or after ``start`` and answered by ``end``."""
        return [o for o in self.outcomes if o.started >= start and o.finished <= end]

    async def _worker(self, state: WorkerState) -> None:
        deadline = time.monotonic() + LOAD_MAX_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            op = self.ops[state.step % len(self.ops)]
            state.step += 1
            if not await getattr(self, op)(state):
                await asyncio.sleep(0.05)  # no hot loop against a failing server

    async def request(self, op: str, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        started = time.monotonic()
        self.in_flight += 1
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.outcomes.append(Outcome(op, started, time.monotonic(), error=error))
            return None
        finally:
            self.in_flight -= 1
        self.outcomes.append(
            Outcome(
                op,
                started,
                time.monotonic(),
                status=response.status_code,
                content_type=response.headers.get("content-type", ""),
                retry_after=response.headers.get("retry-after"),
                body="" if response.is_success else response.text[:500],
            )
        )
        return response

    async def register(self, state: WorkerState) -> bool:
        email = f"load-{uuid.uuid4().hex[:16]}@example.com"
        body = {"email": email, "password": PASSWORD, "name": "Load User"}
        response = await self.request("register", "POST", USERS, json=body)
        if response is None or response.status_code != 201:
            return False
        self.registered.append(email)
        self.accounts.append(email)
        return True

    async def login(self, state: WorkerState) -> bool:
        email = self.accounts[state.step % len(self.accounts)]
        body = {"email": email, "password": PASSWORD}
        response = await self.request("login", "POST", LOGIN, json=body)
        if response is None or response.status_code != 200:
            return False
        state.refresh_token = response.json()["refresh_token"]
        self.refresh_tokens.append(state.refresh_token)
        return True

    async def register_taken(self, state: WorkerState) -> bool:
        """Register an email that is taken: the service fails inside its transaction."""
        email = self.accounts[state.step % len(self.accounts)]
        body = {"email": email.upper(), "password": PASSWORD, "name": "Twin"}
        response = await self.request("register_taken", "POST", USERS, json=body)
        return response is not None and response.status_code == 400

    async def refresh_bogus(self, state: WorkerState) -> bool:
        """Refresh with a token never issued: refused inside the service's transaction."""
        body = {"refresh_token": uuid.uuid4().hex + uuid.uuid4().hex}
        response = await self.request("refresh_bogus", "POST", REFRESH, json=body)
        return response is not None and response.status_code == 401

    async def read(self, state: WorkerState) -> bool:
        token = self.tokens[state.step % len(self.tokens)]
        response = await self.request("read", "GET", ME, headers=bearer(token))
        return response is not None and response.status_code == 200

    async def refresh(self, state: WorkerState) -> bool:
        if state.refresh_token is None:
            return await self.login(state)
        body = {"refresh_token": state.refresh_token}
        state.refresh_token = None  # spent, whatever the answer
        response = await self.request("refresh", "POST", REFRESH, json=body)
        if response is None or response.status_code != 200:
            return False
        state.refresh_token = response.json()["refresh_token"]
        self.refresh_tokens.append(state.refresh_token)
        return True


async def login_statuses(base_url: str, emails: list[str]) -> dict[str, int | str]:
    """Log each account in (a few at a time); the status (or error) per email."""
    limit = asyncio.Semaphore(4)
    results: dict[str, int | str] = {}

    async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT_SECONDS) as client:

        async def one(email: str) -> None:
            async with limit:
                try:
                    response = await client.post(LOGIN, json={"email": email, "password": PASSWORD})
                    results[email] = response.status_code
                except httpx.HTTPError as exc:
                    results[email] = f"{type(exc).__name__}: {exc}"

        await asyncio.gather(*(one(email) for email in emails))
    return results


def failed_logins(statuses: dict[str, int | str]) -> dict[str, int | str]:
    return {email: status for email, status in statuses.items() if status != 200}


# ================================================= 1. PostgreSQL stopped hard under load


@dataclass
class PostgresCrash:
    outcomes: list[Outcome]
    origin: float  # load started
    killed_at: float  # pg_ctl stop -m immediate returned
    restart_at: float  # pg_ctl start began
    restarted_at: float  # pg_ctl start returned: PostgreSQL accepts connections
    recovered_at: float | None  # the service answered every probe successfully again
    last_probe: dict[str, str]
    readyz_while_down: list[int | str]
    acknowledged: list[str]
    missing_registrations: list[str]
    acknowledged_tokens: int
    missing_tokens: int
    failed_logins: dict[str, int | str]
    server_alive: bool
    server_log: str


async def probe_recovery(
    client: httpx.AsyncClient, seed: Account, deadline: float
) -> tuple[float | None, dict[str, str]]:
    """Poll until registration, login, an authenticated read and /readyz all succeed."""
    last: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            email = f"probe-{uuid.uuid4().hex[:12]}@example.com"
            answers = {
                "readyz": await client.get("/readyz", timeout=FAULT_ANSWER_SECONDS),
                "register": await client.post(
                    USERS,
                    json={"email": email, "password": PASSWORD, "name": "Probe"},
                    timeout=FAULT_ANSWER_SECONDS,
                ),
                "login": await client.post(
                    LOGIN,
                    json={"email": seed.email, "password": PASSWORD},
                    timeout=FAULT_ANSWER_SECONDS,
                ),
                "read": await client.get(
                    ME, headers=bearer(seed.access_token), timeout=FAULT_ANSWER_SECONDS
                ),
            }
            last = {name: f"{r.status_code} {r.text[:150]}" for name, r in answers.items()}
            if all(r.is_success for r in answers.values()):
                return time.monotonic(), last
        except httpx.HTTPError as exc:
            last = {"error": f"{type(exc).__name__}: {exc}"}
        await asyncio.sleep(0.2)
    return None, last


async def postgres_crash_scenario(postgres: Postgres, workdir: Path) -> PostgresCrash:
    url = await migrated_postgres_database(postgres, workdir)
    server = Server(service_env(url), workdir)
    try:
        await server.start()
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=CLIENT_TIMEOUT_SECONDS
        ) as client:
            seeds = [await seed_account(client) for _ in range(3)]
            load = Load(client, seeds, ("register", "login", "read"))
            origin = time.monotonic()
            load.start()
            try:
                await asyncio.sleep(2.0)
                assert load.registered, "no registration succeeded before the fault"
                await asyncio.to_thread(postgres.stop_hard)
                killed_at = time.monotonic()
                readyz: list[int | str] = []
                for _ in range(6):
                    try:
                        readyz.append((await client.get("/readyz")).status_code)
                    except httpx.HTTPError as exc:
                        readyz.append(f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.5)
                await asyncio.sleep(max(0.0, killed_at + 4.0 - time.monotonic()))
                restart_at = time.monotonic()
                await asyncio.to_thread(postgres.start)
                restarted_at = time.monotonic()
                recovered_at, last_probe = await probe_recovery(
                    client, seeds[0], restarted_at + PG_RECOVERY_SECONDS
                )
                await asyncio.sleep(1.5)  # the load runs on after recovery too
            finally:
                await load.stop()
                await asyncio.to_thread(postgres.ensure_running)

        acknowledged = [seed.email for seed in seeds] + load.registered
        stored = {row[0] for row in await fetch(url, "SELECT email_key FROM users")}
        missing = [email for email in acknowledged if email.lower() not in stored]
        hashes = {row[0] for row in await fetch(url, "SELECT token_hash FROM refresh_tokens")}
        missing_tokens = sum(token_hash(t) not in hashes for t in load.refresh_tokens)
        statuses = await login_statuses(server.base_url, load.registered)
        return PostgresCrash(
            outcomes=load.outcomes,
            origin=origin,
            killed_at=killed_at,
            restart_at=restart_at,
            restarted_at=restarted_at,
            recovered_at=recovered_at,
            last_probe=last_probe,
            readyz_while_down=readyz,
            acknowledged=acknowledged,
            missing_registrations=missing,
            acknowledged_tokens=len(load.refresh_tokens),
            missing_tokens=missing_tokens,
            failed_logins=failed_logins(statuses),
            server_alive=server.alive(),
            server_log=server.output(tail=None),
        )
    finally:
        await server.kill()


@pytest.fixture(scope="module")
def postgres_crash(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> PostgresCrash:
    """The service under load while its PostgreSQL is stopped hard, then restarted."""
    return run_in_thread(postgres_crash_scenario(postgres, tmp_path_factory.mktemp("pg-crash")))


def test_postgres_down_requests_get_503_problem_with_retry_after(
    postgres_crash: PostgresCrash,
) -> None:
    report = postgres_crash
    down = [
        o
        for o in report.outcomes
        if o.started >= report.killed_at and o.finished <= report.restart_at
    ]
    assert down, "no request was sent while PostgreSQL was down"
    wrong = [o for o in down if not is_503_problem(o)]
    assert not wrong, (
        f"{len(wrong)} of {len(down)} requests sent while PostgreSQL was down were not a 503 "
        f"problem+json with Retry-After:{sample(wrong, report.origin)}"
        f"\nserver log: {logged_errors(report.server_log)}"
    )
    assert report.readyz_while_down, "no /readyz probe while PostgreSQL was down"
    assert set(report.readyz_while_down) == {503}, (
        f"/readyz while PostgreSQL was down: {report.readyz_while_down}"
    )


def test_postgres_down_no_request_hangs_or_gets_500(postgres_crash: PostgresCrash) -> None:
    report = postgres_crash
    hung = [o for o in report.outcomes if o.error is not None]
    slow = [o for o in report.outcomes if o.error is None and o.seconds > FAULT_ANSWER_SECONDS]
    errors = [
        o for o in report.outcomes if o.status is not None and o.status >= 500 and o.status != 503
    ]
    assert report.server_alive, f"the server died:\n{report.server_log[-6000:]}"
    assert not hung, f"{len(hung)} requests got no answer:{sample(hung, report.origin)}"
    assert not slow, (
        f"{len(slow)} requests took over {FAULT_ANSWER_SECONDS} s:{sample(slow, report.origin)}"
    )
    assert not errors, (
        f"{len(errors)} of {len(report.outcomes)} requests failed with a 5xx other than 503:"
        f"{sample(errors, report.origin)}\nserver log: {logged_errors(report.server_log)}"
    )


def test_service_recovers_within_10s_after_postgres_restarts(
    postgres_crash: PostgresCrash,
) -> None:
    report = postgres_crash
    assert report.recovered_at is not None, (
        f"not recovered {PG_RECOVERY_SECONDS} s after PostgreSQL restarted; last probe: "
        f"{report.last_probe}\nserver log: {logged_errors(report.server_log)}"
    )
    assert report.recovered_at - report.restarted_at <= PG_RECOVERY_SECONDS
    after = [o for o in report.outcomes if o.started >= report.recovered_at]
    assert after, "no load after recovery"
    failed = [o for o in after if not o.ok]
    assert not failed, f"requests failed after recovery:{sample(failed, report.origin)}"


def test_every_acknowledged_write_survives_postgres_crash(
    postgres_crash: PostgresCrash,
) -> None:
    report = postgres_crash
    assert report.acknowledged, "no registration was acknowledged"
    assert not report.missing_registrations, (
        f"{len(report.missing_registrations)} of {len(report.acknowledged)} acknowledged "
        f"registrations are not in the database: {report.missing_registrations[:10]}"
    )
    assert report.missing_tokens == 0, (
        f"{report.missing_tokens} of {report.acknowledged_tokens} refresh tokens from "
        "acknowledged logins are not in the database"
    )
    assert not report.failed_logins, (
        f"acknowledged accounts that cannot log in: {list(report.failed_logins.items())[:10]}"
    )


# ============================================================== 2. pool exhaustion


@pytest.fixture(params=BACKENDS)
async def pool_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database for an app with one pooled connection."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'accounts.db'}"  # the app migrates it
    postgres: Postgres = request.getfixturevalue("postgres")
    await asyncio.to_thread(postgres.ensure_running)
    url = await postgres.create_database()
    database = Database(DatabaseConfig(url=url))
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()
    return url


@asynccontextmanager
async def one_connection_app(url: str) -> AsyncIterator[tuple[Container, httpx.AsyncClient]]:
    settings = make_settings(
        url,
        database_pool_size=1,
        database_max_overflow=0,
        database_pool_timeout_seconds=1,
        rate_limits="off",
    )
    application: FastAPI = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=CLIENT_TIMEOUT_SECONDS
        ) as client:
            yield application.state.container, client


async def timed(client: httpx.AsyncClient, op: str, method: str, url: str, **kw: Any) -> Outcome:
    load = Load(client, [], ())
    await load.request(op, method, url, **kw)
    return load.outcomes[0]


async def checked_out_settles(container: Container, within: float = 3.0) -> int:
    """The write pool's checked-out count, once it reaches 0 (or after ``within`` s)."""
    deadline = time.monotonic() + within
    while True:
        count: int = container.database.pool_stats()["checked_out"]
        if count == 0 or time.monotonic() >= deadline:
            return count
        await asyncio.sleep(0.05)


async def test_exhausted_pool_answers_503_problem_quickly(pool_database_url: str) -> None:
    async with one_connection_app(pool_database_url) as (container, client):
        seed = await seed_account(client)
        async with container.database.write_engine.connect() as held:
            await held.execute(text("SELECT 1"))
            assert container.database.pool_stats()["checked_out"] == 1
            body = {"email": f"late-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
            outcomes = [
                await timed(client, "register", "POST", USERS, json={**body, "name": "Late"}),
                await timed(
                    client, "login", "POST", LOGIN, json={"email": seed.email, "password": PASSWORD}
                ),
            ]
            if not container.database.is_sqlite:  # SQLite reads use a pool of their own
                outcomes.append(
                    await timed(client, "read", "GET", ME, headers=bearer(seed.access_token))
                )

    wrong = [o for o in outcomes if not is_503_problem(o)]
    assert not wrong, f"with the only connection held:{sample(wrong, 0.0)}"
    slow = [o for o in outcomes if o.seconds > POOL_ANSWER_SECONDS]
    assert not slow, f"503 took over {POOL_ANSWER_SECONDS} s:{sample(slow, 0.0)}"


async def test_exhausted_pool_leaks_no_connection(pool_database_url: str) -> None:
    async with one_connection_app(pool_database_url) as (container, client):
        seeds = [await seed_account(client)]
        load = Load(client, seeds, ())
        # Two waves of requests, some failing inside their transaction (a taken email,
        # an unknown token), while the only connection is held for 1.5 s: the first
        # wave outwaits the pool's 1 s (503), the second gets the connection once freed.
        ops = [load.register, load.login, load.read, load.register_taken, load.refresh_bogus]
        loop = asyncio.get_running_loop()

        def wave(first_step: int) -> list[asyncio.Task[bool]]:
            burst = enumerate(ops * 3, start=first_step)
            return [loop.create_task(op(WorkerState(step=step))) for step, op in burst]

        async with container.database.write_engine.connect():
            first = wave(0)
            await asyncio.sleep(1.2)
            second = wave(100)
            await asyncio.sleep(0.3)
        await asyncio.gather(*first, *second)
        settled = await checked_out_settles(container)
        metrics = (await client.get("/metrics")).text
        after = [
            await timed(
                client,
                "register",
                "POST",
                USERS,
                json={
                    "email": f"after-{uuid.uuid4().hex[:8]}@example.com",
                    "password": PASSWORD,
                    "name": "After",
                },
            ),
            await timed(
                client, "login", "POST", LOGIN, json={"email": seeds[0].email, "password": PASSWORD}
            ),
            await timed(client, "read", "GET", ME, headers=bearer(seeds[0].access_token)),
        ]
        final = await checked_out_settles(container)

    expected = {"register_taken": 400, "refresh_bogus": 401}
    wrong = [
        o
        for o in load.outcomes
        if not (is_503_problem(o) or (o.status == expected[o.op] if o.op in expected else o.ok))
    ]
    assert not wrong, (
        f"under pool exhaustion, neither the answer nor a 503 problem:{sample(wrong, 0.0)}"
    )
    assert any(is_503_problem(o) for o in load.outcomes), "no request met the exhausted pool"
    assert any(o.ok for o in load.outcomes), "no request of the burst got the freed connection"
    slow = [o for o in load.outcomes if o.seconds > CLIENT_TIMEOUT_SECONDS / 2]
    assert not slow, f"requests waited too long for the pool:{sample(slow, 0.0)}"
    assert settled == 0, f"{settled} connections still checked out after the burst"
    assert 'accounts_db_pool_connections{state="checked_out"} 0.0' in metrics, metrics
    failed = [o for o in after if not o.ok]
    assert not failed, f"requests failed after the burst:{sample(failed, 0.0)}"
    assert final == 0, f"{final} connections still checked out at the end"


# ============================================================ 3. Redis stopped and restarted


@dataclass
class RedisRestart:
    outcomes: list[Outcome]
    origin: float
    down_at: float
    up_at: float
    keys_before: int
    readyz_while_down: list[int | str]
    readyz_ok_at: float | None
    last_readyz: str
    keys_again_at: float | None
    server_log: str


async def redis_restart_scenario(workdir: Path) -> RedisRestart:
    redis_server = RedisServer(free_port(), workdir)
    url = f"sqlite+aiosqlite:///{workdir / 'accounts.db'}"
    server = Server(service_env(url, redis_url=redis_server.url, **GENEROUS_LIMITS), workdir)
    try:
        await redis_server.start()
        await server.start()
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=CLIENT_TIMEOUT_SECONDS
        ) as client:
            seeds = [await seed_account(client) for _ in range(3)]
            load = Load(client, seeds, ("register", "login", "read", "refresh"))
            origin = time.monotonic()
            load.start()
            try:
                await asyncio.sleep(2.0)
                keys_before = len(await redis_server.keys())
                await redis_server.kill()
                down_at = time.monotonic()
                readyz: list[int | str] = []
                while time.monotonic() < down_at + 4.0:
                    try:
                        readyz.append((await client.get("/readyz")).status_code)
                    except httpx.HTTPError as exc:
                        readyz.append(f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.5)
                await redis_server.start()
                up_at = time.monotonic()
                readyz_ok_at: float | None = None
                last_readyz = ""
                while readyz_ok_at is None and time.monotonic() < up_at + REDIS_RECOVERY_SECONDS:
                    try:
                        answer = await client.get("/readyz")
                        last_readyz = f"{answer.status_code} {answer.text[:200]}"
                        if answer.status_code == 200:
                            readyz_ok_at = time.monotonic()
                    except httpx.HTTPError as exc:
                        last_readyz = f"{type(exc).__name__}: {exc}"
                    await asyncio.sleep(0.2)
                keys_again_at: float | None = None
                while keys_again_at is None and time.monotonic() < up_at + REDIS_RECOVERY_SECONDS:
                    if await redis_server.keys():
                        keys_again_at = time.monotonic()
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)
            finally:
                await load.stop()
        return RedisRestart(
            outcomes=load.outcomes,
            origin=origin,
            down_at=down_at,
            up_at=up_at,
            keys_before=keys_before,
            readyz_while_down=readyz,
            readyz_ok_at=readyz_ok_at,
            last_readyz=last_readyz,
            keys_again_at=keys_again_at,
            server_log=server.output(tail=None),
        )
    finally:
        await server.kill()
        await redis_server.kill()


@pytest.fixture(scope="module")
def redis_restart(tmp_path_factory: pytest.TempPathFactory) -> RedisRestart:
    """The service under load while its Redis is killed, then started again."""
    require_binary("redis-server", REDIS_SERVER is not None, "install redis-server")
    return run_in_thread(redis_restart_scenario(tmp_path_factory.mktemp("redis-restart")))


def test_requests_keep_succeeding_while_redis_is_down_and_restarted(
    redis_restart: RedisRestart,
) -> None:
    report = redis_restart
    down = [o for o in report.outcomes if report.down_at <= o.started <= report.up_at]
    assert down, "no request was sent while Redis was down"
    failed = [o for o in report.outcomes if not o.ok]
    assert not failed, (
        f"{len(failed)} of {len(report.outcomes)} requests failed (Redis down at "
        f"t={report.down_at - report.origin:+.2f}s, up at t={report.up_at - report.origin:+.2f}s):"
        f"{sample(failed, report.origin)}\nserver log: {logged_errors(report.server_log)}"
    )


def test_readyz_is_503_while_redis_is_down(redis_restart: RedisRestart) -> None:
    assert redis_restart.readyz_while_down, "no /readyz probe while Redis was down"
    assert set(redis_restart.readyz_while_down) == {503}, redis_restart.readyz_while_down


def test_readyz_returns_200_within_15s_after_redis_restarts(redis_restart: RedisRestart) -> None:
    assert redis_restart.readyz_ok_at is not None, (
        f"/readyz not 200 within {REDIS_RECOVERY_SECONDS} s of Redis restarting: "
        f"{redis_restart.last_readyz}"
    )


def test_service_uses_redis_again_after_it_restarts(redis_restart: RedisRestart) -> None:
    assert redis_restart.keys_before > 0, "the service did not use Redis before the fault"
    assert redis_restart.keys_again_at is not None, (
        f"no key written to the restarted Redis within {REDIS_RECOVERY_SECONDS} s"
    )


# ================================================================ 4. SIGKILL mid-load


@dataclass
class Killed:
    backend: str
    in_flight_at_kill: int
    acknowledged: list[str]
    half_written_users: list[str]
    sessions_without_user: list[str]
    sessions_without_refresh_token: list[str]
    refresh_tokens_without_session: list[str]
    missing_registrations: list[str]
    acknowledged_tokens: int
    missing_tokens: int
    failed_logins: dict[str, int | str]
    fresh_registration: int | str
    server_log: str


def verify_password(password_hash: str | None) -> bool:
    if not password_hash:
        return False
    try:
        return Argon2().verify(password_hash, PASSWORD)
    except (VerificationError, InvalidHashError):
        return False


async def sigkill_scenario(backend: str, postgres: Postgres | None, workdir: Path) -> Killed:
    if postgres is not None:
        url = await migrated_postgres_database(postgres, workdir)
    else:
        url = f"sqlite+aiosqlite:///{workdir / 'accounts.db'}"
    server = Server(service_env(url), workdir)
    try:
        await server.start()
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=CLIENT_TIMEOUT_SECONDS
        ) as client:
            seeds = [await seed_account(client) for _ in range(2)]
            load = Load(client, seeds, ("register", "login", "refresh"))
            load.start()
            try:
                await asyncio.sleep(2.0)
                assert load.registered, "no registration succeeded before the kill"
                in_flight = load.in_flight
                await server.kill()
            finally:
                await load.stop()
        await server.start()  # the same port, the same database

        users = await fetch(url, "SELECT id, email, email_key, password_hash FROM users")
        checked = await asyncio.to_thread(lambda: [(row, verify_password(row[3])) for row in users])
        half_written = [
            f"{row[0]} {row[1]!r} key={row[2]!r} hash_ok={ok}"
            for row, ok in checked
            if not ok or not row[1] or row[2] != str(row[1]).lower()
        ]
        orphans = await fetch(
            url,
            "SELECT s.id FROM sessions s LEFT JOIN users u ON u.id = s.user_id WHERE u.id IS NULL",
        )
        tokenless = await fetch(
            url,
            "SELECT s.id FROM sessions s WHERE NOT EXISTS "
            "(SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id)",
        )
        stray = await fetch(
            url,
            "SELECT r.id FROM refresh_tokens r LEFT JOIN sessions s ON s.id = r.session_id "
            "WHERE s.id IS NULL",
        )
        acknowledged = [seed.email for seed in seeds] + load.registered
        stored = {str(row[2]) for row in users}
        hashes = {row[0] for row in await fetch(url, "SELECT token_hash FROM refresh_tokens")}
        statuses = await login_statuses(server.base_url, acknowledged)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=CLIENT_TIMEOUT_SECONDS) as c:
            email = f"fresh-{uuid.uuid4().hex[:12]}@example.com"
            try:
                answer = await c.post(
                    USERS, json={"email": email, "password": PASSWORD, "name": "F"}
                )
                fresh: int | str = answer.status_code
            except httpx.HTTPError as exc:
                fresh = f"{type(exc).__name__}: {exc}"
        return Killed(
            backend=backend,
            in_flight_at_kill=in_flight,
            acknowledged=acknowledged,
            half_written_users=half_written,
            sessions_without_user=[str(row[0]) for row in orphans],
            sessions_without_refresh_token=[str(row[0]) for row in tokenless],
            refresh_tokens_without_session=[str(row[0]) for row in stray],
            missing_registrations=[e for e in acknowledged if e.lower() not in stored],
            acknowledged_tokens=len(load.refresh_tokens),
            missing_tokens=sum(token_hash(t) not in hashes for t in load.refresh_tokens),
            failed_logins=failed_logins(statuses),
            fresh_registration=fresh,
            server_log=server.output(tail=None),
        )
    finally:
        await server.kill()


@pytest.fixture(scope="module", params=BACKENDS)
def killed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Killed:
    """The server SIGKILLed mid-load, then started again on the same database."""
    postgres: Postgres | None = None
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres")
    workdir = tmp_path_factory.mktemp(f"sigkill-{request.param}")
    report = run_in_thread(sigkill_scenario(request.param, postgres, workdir))
    assert report.in_flight_at_kill > 0, "no request was in flight when the server was killed"
    return report


def test_no_half_written_account_after_sigkill(killed: Killed) -> None:
    assert not killed.half_written_users, (
        f"users rows that are not whole after SIGKILL: {killed.half_written_users[:10]}"
    )


def test_no_half_written_session_after_sigkill(killed: Killed) -> None:
    assert not killed.sessions_without_user, killed.sessions_without_user[:10]
    assert not killed.sessions_without_refresh_token, killed.sessions_without_refresh_token[:10]
    assert not killed.refresh_tokens_without_session, killed.refresh_tokens_without_session[:10]


def test_acknowledged_writes_survive_sigkill(killed: Killed) -> None:
    assert not killed.missing_registrations, (
        f"{len(killed.missing_registrations)} of {len(killed.acknowledged)} acknowledged "
        f"registrations are gone: {killed.missing_registrations[:10]}"
    )
    assert killed.missing_tokens == 0, (
        f"{killed.missing_tokens} of {killed.acknowledged_tokens} acknowledged refresh tokens "
        "are gone"
    )


def test_service_works_after_restart_following_sigkill(killed: Killed) -> None:
    assert killed.fresh_registration == 201, (
        f"{killed.fresh_registration}; server log: {logged_errors(killed.server_log)}"
    )
    assert not killed.failed_logins, (
        f"acknowledged accounts that cannot log in after the restart: "
        f"{list(killed.failed_logins.items())[:10]}"
    )
