"""Migrations and models describe the same schema, on every backend."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from accounts.db.engine import Database, DatabaseConfig
from accounts.models import Base


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    database = Database(DatabaseConfig(url=database_url))
    try:
        async with database.read_engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await database.dispose()
    assert differences == [], f"models and migrations disagree: {differences}"


def test_head_constant_is_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    from accounts.db.migrate import HEAD, alembic_config

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads == [HEAD], f"set accounts.db.migrate.HEAD to {heads}"
