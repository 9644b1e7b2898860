"""Apply and inspect Alembic migrations from async code.

Checking costs no Alembic: the current revision is read from ``alembic_version``
with plain SQL and compared with ``HEAD``. Alembic (tens of MB resident) is
imported only when there is something to apply, so serving processes on an
up-to-date database never load it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from accounts.db.engine import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest revision in migrations/versions; a test checks it against Alembic's
# own view, so adding a migration without updating this fails the suite.
HEAD = "0004"


class DatabaseNotMigrated(Exception):
    """The database schema is behind the code; ``accounts migrate`` brings it up to date."""


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


async def current_revision(database: Database) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    async with database.read_engine.connect() as connection:
        try:
            result = await connection.execute(text("SELECT version_num FROM alembic_version"))
        except DBAPIError:
            return None
        return result.scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What ``upgrade`` did: the revisions it applied, oldest first (none when the
    database was up to date), and where the database was before and is now."""

    before: str | None
    after: str | None
    applied: tuple[str, ...]


async def upgrade(database: Database) -> Upgrade:
    """Bring the schema to the newest revision (idempotent)."""
    before = await current_revision(database)
    if before == HEAD:
        return Upgrade(before, before, ())
    async with database.write_engine.connect() as connection:
        await connection.run_sync(_upgrade)
        await connection.commit()
    after = await current_revision(database)
    return Upgrade(before, after, revisions_between(before, after))


def revisions_between(older: str | None, newer: str | None) -> tuple[str, ...]:
    """The revisions after ``older`` (None: an empty database) up to ``newer``, oldest first."""
    if newer is None or older == newer:
        return ()
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    newest_first = scripts.iterate_revisions(newer, older or "base")
    return tuple(reversed([script.revision for script in newest_first]))


async def ensure_migrated(database: Database) -> None:
    """Raise ``DatabaseNotMigrated`` when migrations are pending."""
    if await current_revision(database) != HEAD:
        raise DatabaseNotMigrated(
            "the database schema is not up to date: run `accounts migrate` first"
        )
