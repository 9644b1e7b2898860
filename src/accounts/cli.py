"""The ``accounts`` command line: serve, migrate, create-admin, openapi, graphql-schema."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from accounts.settings import Settings, SettingsError, check_host_resolves, load_settings

app = typer.Typer(
    help="Accounts: a user-accounts service with REST and GraphQL APIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# soft_wrap: an error stays on one line however narrow (or absent) the terminal.
err = Console(stderr=True, soft_wrap=True, highlight=False)
T = TypeVar("T")
# What `accounts serve` becomes once the database is ready.
SERVER_MODULE = "accounts.http.server"


def _settings(**overrides: object) -> Settings:
    from accounts.unknown_settings import unknown_variable_warnings

    # Before loading: a misspelt name may be why a setting is then missing.
    for warning in unknown_variable_warnings(os.environ):
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None


def _run(
    settings: Settings, work: Callable[..., Awaitable[T]], *, migrate_sqlite: bool = True
) -> T:
    """Build the container, start it, run ``work(container)``, and close it."""
    from accounts.bootstrap import build
    from accounts.db.connect_check import check_connection

    async def main() -> T:
        container = build(settings)
        try:
            await check_connection(container.database)
            await container.start(migrate_sqlite=migrate_sqlite)
            return await work(container)
        finally:
            await container.close()

    return _with_database(settings, main)


def _with_database(settings: Settings, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(main())`` for every command that touches the database: a database
    that cannot be opened, reached or used ends in one line naming
    ACCOUNTS_DATABASE_URL (its password masked) and exit 1, not a traceback."""
    from accounts.db.connect_check import DatabaseUnreachable, describe_failure, display_url
    from accounts.db.migrate import DatabaseNotMigrated

    def fail(reason: str) -> typer.Exit:
        where = f"ACCOUNTS_DATABASE_URL={display_url(settings.database_url)}"
        err.print(
            f"[red]error:[/red] cannot reach the database ({escape(where)}): {escape(reason)}"
        )
        return typer.Exit(1)

    try:
        return asyncio.run(main())
    except DatabaseNotMigrated as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except DatabaseUnreachable as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # the connection dropped after the check
        raise fail(describe_failure(exc, settings.database_url)) from None


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind [default: ACCOUNTS_HOST or 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: ACCOUNTS_PORT or 8000]")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes [default: 1]")
    ] = None,
) -> None:
    """Serve the API. Applies pending migrations on SQLite; refuses an unmigrated PostgreSQL."""
    overrides = {
        k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None
    }
    settings = _settings(**overrides)
    try:
        check_host_resolves(settings)
    except SettingsError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    # The server re-reads settings from the environment: hand it the overrides that way.
    for key, value in overrides.items():
        os.environ[f"ACCOUNTS_{key.upper()}"] = str(value)

    async def ready(_container: object) -> None:
        return None

    # Migrate and create the first signing key once, here, rather than racing in
    # every worker; a PostgreSQL schema that is behind stops us with a hint.
    _run(settings, ready)
    _become_the_server(settings)


def _become_the_server(settings: Settings) -> None:
    """Replace this process with ``accounts.http.server`` (see its docstring): the
    serving process then holds none of the command line's imports or leftovers."""
    from accounts.http import server

    if os.name != "posix":  # no exec that keeps the process: serve from here
        server.run(settings)
        return
    env = server.serving_environment(os.environ)
    package_root = Path(__file__).resolve().parent.parent
    if not any(_same_path(entry, package_root) for entry in sys.path[1:]):
        # Found only through the working directory (run from a source tree): say
        # where, since -P below keeps the working directory off the server's path.
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(package_root), env.get("PYTHONPATH")])
        )
    sys.stdout.flush()
    sys.stderr.flush()
    # -P: a stray jwt.py or email.py in the working directory (where .env and
    # accounts.db live) must not shadow the real module in the serving process.
    command = [sys.executable, "-P", "-m", SERVER_MODULE]
    os.execve(sys.executable, command, env)  # noqa: S606 - our own interpreter, no shell


def _same_path(entry: str, path: Path) -> bool:
    try:
        return Path(entry or ".").resolve() == path
    except OSError:
        return False


@app.command()
def migrate() -> None:
    """Apply pending database migrations."""
    from accounts.db import migrate as migrations
    from accounts.db.connect_check import check_connection
    from accounts.db.engine import Database, DatabaseConfig

    settings = _settings()

    async def main() -> migrations.Upgrade:
        database = Database(DatabaseConfig(url=settings.database_url))
        try:
            await check_connection(database)
            return await migrations.upgrade(database)
        finally:
            await database.dispose()

    done = _with_database(settings, main)
    if not done.applied:
        typer.echo(f"database is up to date (revision {done.after})")
        return
    typer.echo(
        f"migrated the database from {done.before or '(empty)'} to {done.after}:"
        f" applied {', '.join(done.applied)}"
    )


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="The admin's email address")],
    name: Annotated[str, typer.Option(help="The admin's display name")],
    password: Annotated[
        str | None,
        typer.Option(help="Else ACCOUNTS_ADMIN_PASSWORD, else a hidden prompt", show_default=False),
    ] = None,
) -> None:
    """Create a superuser account."""
    from accounts.bootstrap import Container
    from accounts.domain.errors import DomainError

    settings = _settings()
    secret = password or os.environ.get("ACCOUNTS_ADMIN_PASSWORD")
    if not secret:
        secret = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def create(container: Container) -> str:
        user = await container.users.create(email, secret, name, is_superuser=True)
        return str(user.id)

    try:
        user_id = _run(settings, create)
    except DomainError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from None
    typer.echo(f"created superuser {email} ({user_id})")


@app.command()
def openapi() -> None:
    """Print the OpenAPI document of the REST API."""
    from accounts.http.app import create_app

    typer.echo(json.dumps(create_app(_settings()).openapi(), indent=2))


keys_app = typer.Typer(help="Manage the RS256 signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Make a new signing key; old keys keep verifying until their tokens expire."""
    from accounts.bootstrap import Container

    settings = _settings()

    async def rotate(container: Container) -> str:
        return await container.signing_keys.rotate(
            token_ttl_seconds=settings.access_token_ttl_seconds
        )

    kid = _run(settings, rotate, migrate_sqlite=False)
    typer.echo(f"new signing key {kid}; instances switch to it within a minute")


@keys_app.command("list")
def keys_list() -> None:
    """List the signing keys: the newest active one signs."""
    from accounts.bootstrap import Container

    settings = _settings()

    async def listing(container: Container) -> tuple[list[str], str]:
        ring = container.key_ring
        return [key["kid"] for key in ring.jwks()["keys"]], ring.signing_key.kid

    kids, signing = _run(settings, listing, migrate_sqlite=False)
    for kid in kids:
        typer.echo(f"{kid}  (signing)" if kid == signing else kid)


@app.command("graphql-schema")
def graphql_schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from accounts.http.graphql.schema import build_schema

    typer.echo(build_schema().as_str())


def main() -> None:
    app()
