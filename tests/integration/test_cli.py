"""The ``accounts`` command line, run as the real console script in a subprocess.

Each run gets a scrubbed environment (no inherited ``ACCOUNTS_*``) and a temporary
working directory (no stray ``.env``), so a developer's setup cannot change results.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url

from accounts.db import migrate
from accounts.db.engine import Database, DatabaseConfig
from accounts.db.migrate import HEAD
from accounts.http.app import create_app
from tests.conftest import (
    IN_CI,
    POSTGRES_URL,
    _asyncpg_dsn,
    _run_in_thread,
    _with_database,
    make_settings,
)
from tests.servers import free_port

CONSOLE_SCRIPT = Path(sys.executable).parent / "accounts"
COMMAND = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "accounts"]
ADMIN_PASSWORD = "an admin passphrase"
CLI_TIMEOUT_SECONDS = 60
# Every migration, oldest first: one per file in db/migrations/versions (0001_initial.py).
ALL_REVISIONS = sorted(
    path.name.split("_", 1)[0] for path in (migrate.MIGRATIONS_DIR / "versions").glob("0*.py")
)
# Variables that would change how output is laid out, on top of ACCOUNTS_*.
SCRUBBED = {"COLUMNS", "LINES"}


def scrubbed_env(**settings: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ACCOUNTS_") and key not in SCRUBBED
    }
    env.update(settings)
    return env


def run_cli(
    *args: str, cwd: Path, timeout: float = CLI_TIMEOUT_SECONDS, **settings: str
) -> subprocess.CompletedProcess[str]:
    """Run ``accounts *args``; ``settings`` are ACCOUNTS_* variables, e.g. DATABASE_URL=...

    Stdin is empty, so a command that unexpectedly prompts fails instead of hanging.
    """
    env = scrubbed_env(**{f"ACCOUNTS_{key}": value for key, value in settings.items()})
    return subprocess.run(  # noqa: S603
        [*COMMAND, *args],
        cwd=cwd,
        env=env,
        input="",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str]) -> str:
    """A non-zero exit with a one-line message on stderr and no traceback; the line."""
    assert result.returncode != 0, result
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def require_postgres() -> str:
    """The server URL from ACCOUNTS_TEST_POSTGRES_URL, as conftest.postgres_url treats it."""
    if not POSTGRES_URL:
        reason = (
            "PostgreSQL not configured: set ACCOUNTS_TEST_POSTGRES_URL or run `make test`, "
            "which starts one with scripts/postgres.sh"
        )
        if IN_CI:
            pytest.fail(f"{reason} (a skip is a failure under CI)")
        pytest.skip(reason)
    return POSTGRES_URL


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A freshly created PostgreSQL database with no schema at all, dropped afterwards."""
    server = require_postgres()
    name = f"accounts_cli_{uuid.uuid4().hex[:12]}"

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(server))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    _run_in_thread(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(server, name)
    finally:
        _run_in_thread(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file that does not exist yet, or a bare PostgreSQL one."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    url: str = request.getfixturevalue("empty_postgres_url")
    return url


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


async def me_after_password_login(url: str, email: str, password: str) -> dict[str, Any]:
    """Log in through the REST API of an in-process app on ``url``; return /users/me."""
    application = create_app(make_settings(url))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            token = await http.post(
                "/api/v1/auth/token", data={"username": email, "password": password}
            )
            assert token.status_code == 200, token.text
            me = await http.get(
                "/api/v1/users/me",
                headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            )
            assert me.status_code == 200, me.text
            body: dict[str, Any] = me.json()
            return body


async def run_cli_async(
    *args: str, cwd: Path, seconds: float = CLI_TIMEOUT_SECONDS, **settings: str
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, *args, cwd=cwd, timeout=seconds, **settings)


# --- Help and the spec -------------------------------------------------------------


@pytest.mark.parametrize("command", ["serve", "migrate", "create-admin", "openapi"])
def test_help_of_each_command_exits_zero(command: str, workdir: Path) -> None:
    result = run_cli(command, "--help", cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert command in result.stdout


def test_openapi_prints_the_spec_as_json(workdir: Path) -> None:
    result = run_cli("openapi", cwd=workdir)

    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout)
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/users", "/api/v1/users/{user_id}", "/api/v1/auth/token"} <= set(spec["paths"])


def test_openapi_touches_no_database(workdir: Path) -> None:
    result = run_cli("openapi", cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert list(workdir.iterdir()) == []


# --- migrate and create-admin ------------------------------------------------------


async def test_migrate_then_create_admin_makes_a_superuser_who_can_log_in(
    empty_database_url: str, workdir: Path
) -> None:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"

    migrated = await run_cli_async("migrate", cwd=workdir, DATABASE_URL=empty_database_url)
    created = await run_cli_async(
        "create-admin",
        "--email",
        email,
        "--name",
        "Ada Admin",
        "--password",
        ADMIN_PASSWORD,
        cwd=workdir,
        DATABASE_URL=empty_database_url,
    )

    assert migrated.returncode == 0, migrated.stderr
    assert created.returncode == 0, created.stderr
    assert email in created.stdout
    me = await me_after_password_login(empty_database_url, email, ADMIN_PASSWORD)
    assert me["email"] == email
    assert me["name"] == "Ada Admin"
    assert me["is_superuser"] is True
    assert me["is_active"] is True


def test_migrate_twice_is_a_no_op(workdir: Path, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'twice.db'}"

    first = run_cli("migrate", cwd=workdir, DATABASE_URL=url)
    second = run_cli("migrate", cwd=workdir, DATABASE_URL=url)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr


async def test_migrate_on_an_empty_database_says_which_revisions_it_applied(
    empty_database_url: str, workdir: Path
) -> None:
    result = await run_cli_async("migrate", cwd=workdir, DATABASE_URL=empty_database_url)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"migrated the database from (empty) to {HEAD}: applied {', '.join(ALL_REVISIONS)}"
    )


def test_migrate_says_up_to_date_only_when_nothing_was_pending(
    workdir: Path, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'twice.db'}"

    first = run_cli("migrate", cwd=workdir, DATABASE_URL=url)
    second = run_cli("migrate", cwd=workdir, DATABASE_URL=url)

    assert "up to date" not in first.stdout
    assert second.stdout.strip() == f"database is up to date (revision {HEAD})"


async def test_migrate_from_a_partly_migrated_database_names_only_what_it_applied(
    workdir: Path, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'partly.db'}"
    await upgrade_to(url, ALL_REVISIONS[1])

    result = await run_cli_async("migrate", cwd=workdir, DATABASE_URL=url)

    assert result.returncode == 0, result.stderr
    rest = ALL_REVISIONS[2:]
    assert result.stdout.strip() == (
        f"migrated the database from {ALL_REVISIONS[1]} to {HEAD}: applied {', '.join(rest)}"
    )


async def upgrade_to(url: str, revision: str) -> None:
    """Migrate the database at ``url`` up to ``revision`` and no further."""
    from alembic import command

    database = Database(DatabaseConfig(url=url))
    try:
        async with database.write_engine.connect() as connection:
            await connection.run_sync(
                lambda sync: command.upgrade(migrate.alembic_config(sync), revision)
            )
            await connection.commit()
    finally:
        await database.dispose()


async def test_create_admin_takes_the_password_from_the_environment(
    database_url: str, workdir: Path
) -> None:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"

    created = await run_cli_async(
        "create-admin",
        "--email",
        email,
        "--name",
        "Env Admin",
        cwd=workdir,
        DATABASE_URL=database_url,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
    )

    assert created.returncode == 0, created.stderr
    me = await me_after_password_login(database_url, email, ADMIN_PASSWORD)
    assert me["is_superuser"] is True


async def test_create_admin_twice_with_one_email_fails_with_a_clear_message(
    database_url: str, workdir: Path
) -> None:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    args = ("create-admin", "--email", email, "--name", "Admin", "--password", ADMIN_PASSWORD)

    first = await run_cli_async(*args, cwd=workdir, DATABASE_URL=database_url)
    second = await run_cli_async(*args, cwd=workdir, DATABASE_URL=database_url)

    assert first.returncode == 0, first.stderr
    message = assert_clean_failure(second)
    assert "already registered" in message.lower()


async def test_create_admin_with_a_short_password_fails_with_a_clear_message(
    database_url: str, workdir: Path
) -> None:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"

    result = await run_cli_async(
        "create-admin",
        "--email",
        email,
        "--name",
        "Admin",
        "--password",
        "short",
        cwd=workdir,
        DATABASE_URL=database_url,
    )

    message = assert_clean_failure(result)
    assert "password" in message.lower()


# --- serve refusing to start -------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("ACCOUNTS_PORT", "notaport"),
        ("ACCOUNTS_DATABASE_URL", "mysql://x"),
        ("ACCOUNTS_EMAIL_FROM", "notanemail"),
        ("ACCOUNTS_JWT_ISSUER", ""),
        ("ACCOUNTS_JWT_AUDIENCE", ""),
        ("ACCOUNTS_PUBLIC_URL", "https://"),
        ("ACCOUNTS_SMTP_HOST", ""),
    ],
    ids=lambda value: str(value).removeprefix("ACCOUNTS_").lower() or "empty",
)
def test_serve_with_a_bad_setting_exits_with_one_line_naming_it(
    setting: str, value: str, workdir: Path
) -> None:
    # SMTP credentials without a host: the message names the host that is missing.
    extra = {"SMTP_USERNAME": "mailer", "SMTP_PASSWORD": "secret"} if "SMTP" in setting else {}
    result = run_cli("serve", cwd=workdir, **{setting.removeprefix("ACCOUNTS_"): value}, **extra)

    message = assert_clean_failure(result)
    assert setting in message
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    "host",
    ["not_a_host", "999.1.1.1", "", "nonexistent.invalid"],
    ids=["not-a-name", "not-an-address", "empty", "does-not-resolve"],
)
@pytest.mark.parametrize("given_as", ["environment", "option"])
def test_serve_with_a_bad_host_exits_with_one_line_naming_accounts_host(
    host: str, given_as: str, workdir: Path
) -> None:
    if given_as == "option":
        result = run_cli("serve", "--host", host, "--port", str(free_port()), cwd=workdir)
    else:
        result = run_cli("serve", "--port", str(free_port()), cwd=workdir, HOST=host)

    message = assert_clean_failure(result)
    assert result.returncode == 2
    assert "ACCOUNTS_HOST" in message
    assert list(workdir.iterdir()) == []


def test_serve_against_an_unmigrated_postgres_exits_with_a_migrate_hint(
    empty_postgres_url: str, workdir: Path
) -> None:
    started = time.monotonic()
    try:
        result = run_cli(
            "serve",
            "--port",
            str(free_port()),
            cwd=workdir,
            timeout=30,
            DATABASE_URL=empty_postgres_url,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("`accounts serve` kept running against an unmigrated database")

    message = assert_clean_failure(result)
    assert "accounts migrate" in message
    assert time.monotonic() - started < 30


async def test_serve_refusal_leaves_the_postgres_database_unmigrated(
    empty_postgres_url: str, workdir: Path
) -> None:
    result = await run_cli_async(
        "serve",
        "--port",
        str(free_port()),
        cwd=workdir,
        seconds=30,
        DATABASE_URL=empty_postgres_url,
    )

    assert result.returncode != 0
    connection = await asyncpg.connect(_asyncpg_dsn(empty_postgres_url))
    try:
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await connection.close()
    assert tables == []


# --- a database that cannot be used --------------------------------------------------

# Every command that opens the database, with the arguments it needs to get that far.
DATABASE_COMMANDS = {
    "serve": ("serve", "--port", "8631"),
    "migrate": ("migrate",),
    "create-admin": (
        "create-admin",
        "--email",
        "a@example.com",
        "--name",
        "A",
        "--password",
        ADMIN_PASSWORD,
    ),
    "keys-list": ("keys", "list"),
    "keys-rotate": ("keys", "rotate"),
}
# In each URL below that has one; a message must never show it.
DATABASE_PASSWORD = "pw-d0-not-print"


def unusable_database_url(kind: str, tmp_path: Path) -> str:
    if kind == "missing-sqlite-directory":
        return f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'accounts.db'}"
    if kind == "nothing-listening":
        return f"postgresql+asyncpg://accounts:{DATABASE_PASSWORD}@127.0.0.1:{free_port()}/x"
    server = make_url(require_postgres())
    if kind == "missing-postgres-database":
        url = server.set(database=f"no_such_db_{uuid.uuid4().hex[:8]}")
    else:  # unknown-postgres-role
        url = server.set(username=f"no_such_role_{uuid.uuid4().hex[:8]}")
    return url.set(password=DATABASE_PASSWORD).render_as_string(hide_password=False)


@pytest.mark.parametrize(
    "kind",
    [
        "missing-sqlite-directory",
        "nothing-listening",
        "missing-postgres-database",
        "unknown-postgres-role",
    ],
)
@pytest.mark.parametrize("command", list(DATABASE_COMMANDS))
def test_a_database_that_cannot_be_opened_ends_in_one_line_naming_the_setting(
    command: str, kind: str, workdir: Path, tmp_path: Path
) -> None:
    url = unusable_database_url(kind, tmp_path)

    result = run_cli(*DATABASE_COMMANDS[command], cwd=workdir, timeout=30, DATABASE_URL=url)

    message = assert_clean_failure(result)
    assert result.returncode == 1
    assert "ACCOUNTS_DATABASE_URL" in message
    assert "cannot reach the database" in message
    assert DATABASE_PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("missing-sqlite-directory", "does not exist"),
        ("missing-postgres-database", "does not exist"),
        ("unknown-postgres-role", "no_such_role_"),
    ],
)
def test_the_database_failure_line_says_what_is_wrong(
    kind: str, expected: str, workdir: Path, tmp_path: Path
) -> None:
    result = run_cli("migrate", cwd=workdir, DATABASE_URL=unusable_database_url(kind, tmp_path))

    assert expected in assert_clean_failure(result)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://postgres@127.0.0.1:notaport/accounts",
        "postgresql+asyncpg://postgres@127.0.0.1:0/accounts",
        f"postgresql+asyncpg://postgres:{DATABASE_PASSWORD}@127.0.0.1:99999/accounts",
    ],
    ids=["port-not-a-number", "port-zero", "port-too-large-with-a-password"],
)
@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_a_malformed_database_url_is_refused_as_a_bad_setting(
    command: str, url: str, workdir: Path
) -> None:
    result = run_cli(*DATABASE_COMMANDS[command], cwd=workdir, DATABASE_URL=url)

    message = assert_clean_failure(result)
    assert result.returncode == 2
    assert "ACCOUNTS_DATABASE_URL" in message
    assert "port" in message
    assert DATABASE_PASSWORD not in result.stdout + result.stderr


# --- unknown ACCOUNTS_* variables ------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "env_file", "warning"),
    [
        (
            {"RATE_LIMIT": "off"},
            None,
            "warning: ACCOUNTS_RATE_LIMIT (environment variable) is not a setting and is"
            " ignored: did you mean ACCOUNTS_RATE_LIMITS?",
        ),
        (
            {},
            "ACCOUNTS_REGISTRATON_OPEN=false\nOTHER_TOOL=1\n",
            "warning: ACCOUNTS_REGISTRATON_OPEN (key in .env) is not a setting and is"
            " ignored: did you mean ACCOUNTS_REGISTRATION_OPEN?",
        ),
    ],
    ids=["environment", "env-file"],
)
def test_a_misspelt_setting_is_warned_about_with_a_suggestion(
    workdir: Path, environment: dict[str, str], env_file: str | None, warning: str
) -> None:
    if env_file is not None:
        (workdir / ".env").write_text(env_file)

    result = run_cli("openapi", cwd=workdir, **environment)

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == warning


def test_an_unknown_variable_like_no_setting_is_warned_about_without_a_suggestion(
    workdir: Path,
) -> None:
    result = run_cli("openapi", cwd=workdir, OTHER_TOOLS_FLAG="1")

    assert result.returncode == 0, result.stderr
    assert "ACCOUNTS_OTHER_TOOLS_FLAG" in result.stderr
    assert "did you mean" not in result.stderr


def test_a_warning_does_not_hide_the_error_it_explains(workdir: Path) -> None:
    result = run_cli(
        "serve", cwd=workdir, SMTP_HOSTNAME="smtp.example.com", SMTP_USERNAME="u", SMTP_PASSWORD="p"
    )

    assert result.returncode == 2
    warning, error = result.stderr.strip().splitlines()
    assert "did you mean ACCOUNTS_SMTP_HOST?" in warning
    assert error.startswith("error: invalid settings: ACCOUNTS_SMTP_HOST")


def test_variables_the_project_reads_outside_settings_are_not_warned_about(
    workdir: Path,
) -> None:
    result = run_cli(
        "openapi",
        cwd=workdir,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        PG_PORT="54329",
        REDIS_PORT="63799",
        TEST_POSTGRES_URL="postgresql+asyncpg://postgres@127.0.0.1:54329/postgres",
        TEST_SOMETHING_NEW="1",
        RATE_LIMITS="off",
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
