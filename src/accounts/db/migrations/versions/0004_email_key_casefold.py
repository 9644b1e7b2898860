"""email keys are case-folded (NFC), not just lower-cased

Lower-casing misses case pairs such as Greek capital sigma, whose lower-case form
depends on its position in the word (final sigma differs from sigma), so two accounts
differing only in case could both exist. Keys are recomputed in Python; folding can
lengthen a string, hence the wider column. If two existing accounts now share a key,
the unique index refuses the upgrade: merge or rename one of them first.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 12:45:00
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key(email: str) -> str:
    return unicodedata.normalize("NFC", email.strip().casefold())


users = sa.table(
    "users",
    sa.column("id", sa.Uuid()),
    sa.column("email", sa.String()),
    sa.column("email_key", sa.String()),
)
tokens = sa.table(
    "one_time_tokens", sa.column("id", sa.Uuid()), sa.column("email_key", sa.String())
)


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column(
            "email_key",
            existing_type=sa.String(length=254),
            type_=sa.String(length=400),
            existing_nullable=False,
        )
    with op.batch_alter_table("one_time_tokens", schema=None) as batch_op:
        batch_op.alter_column(
            "email_key",
            existing_type=sa.String(length=254),
            type_=sa.String(length=400),
            existing_nullable=False,
        )
    connection = op.get_bind()
    for row_id, email in connection.execute(sa.select(users.c.id, users.c.email)).all():
        connection.execute(users.update().where(users.c.id == row_id).values(email_key=_key(email)))
    for row_id, key in connection.execute(sa.select(tokens.c.id, tokens.c.email_key)).all():
        connection.execute(tokens.update().where(tokens.c.id == row_id).values(email_key=_key(key)))


def downgrade() -> None:
    connection = op.get_bind()
    for row_id, email in connection.execute(sa.select(users.c.id, users.c.email)).all():
        connection.execute(
            users.update().where(users.c.id == row_id).values(email_key=email.strip().lower())
        )
    with op.batch_alter_table("one_time_tokens", schema=None) as batch_op:
        batch_op.alter_column(
            "email_key",
            existing_type=sa.String(length=400),
            type_=sa.String(length=254),
            existing_nullable=False,
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column(
            "email_key",
            existing_type=sa.String(length=400),
            type_=sa.String(length=254),
            existing_nullable=False,
        )
