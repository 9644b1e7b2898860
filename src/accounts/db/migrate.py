"""Apply and inspect Alembic migrations from async code."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from accounts.db.engine import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseNotMigrated(Exception):
    """The database schema is behind the code; ``accounts migrate`` brings it up to date."""


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _pending(connection: Connection) -> bool:
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    current = set(MigrationContext.configure(connection).get_current_heads())
    return current != heads


async def upgrade(database: Database) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    async with database.write_engine.connect() as connection:
        await connection.run_sync(_upgrade)
        await connection.commit()


async def ensure_migrated(database: Database) -> None:
    """Raise ``DatabaseNotMigrated`` when migrations are pending."""
    async with database.read_engine.connect() as connection:
        if await connection.run_sync(_pending):
            raise DatabaseNotMigrated(
                "the database schema is not up to date: run `accounts migrate` first"
            )
