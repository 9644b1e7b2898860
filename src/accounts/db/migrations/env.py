"""Alembic environment.

Runs on the connection that ``accounts.db.migrate`` hands over in
``config.attributes["connection"]``, so migrations run inside the caller's event
loop and engine (with its SQLite pragmas). Batch mode lets SQLite alter tables.
"""

from __future__ import annotations

from alembic import context

from accounts.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `accounts migrate`, not the bare alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
