"""users.name_key: a Python-lower-cased name for case-insensitive search

SQL lower() folds only ASCII letters on SQLite and under PostgreSQL's C locale, so
"ÉLODIE" was not found by "élodie". The key is computed in Python, here too.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 11:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

users = sa.table(
    "users",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("name_key", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("name_key", sa.String(length=400), nullable=False, server_default="")
        )
    connection = op.get_bind()
    rows = connection.execute(sa.select(users.c.id, users.c.name)).all()
    for row_id, name in rows:
        connection.execute(users.update().where(users.c.id == row_id).values(name_key=name.lower()))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("name_key")
