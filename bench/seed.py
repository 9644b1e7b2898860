"""Seed a benchmark database with N users, fast.

    python -m bench.seed --url postgresql+asyncpg://postgres@127.0.0.1:54339/bench --users 1000000

The database is migrated first with the project's own migrations
(``accounts.db.migrate.upgrade``) and given a signing key the way the service makes
its first one (``SigningKeyService.load``). Then every user gets the same argon2id
hash of ``PASSWORD``, computed once with the service's own hasher and parameters, so
that seeding costs one hash instead of N. Ids are UUIDv7 (``accounts.models.base.new_id``),
emails are distinct (``user{i}@bench.example.com``) and ``created_at`` is spread over
the past year in id order. One superuser (``ADMIN_EMAIL``) is added for the list
scenarios.

PostgreSQL is filled with ``COPY`` (asyncpg ``copy_records_to_table``); SQLite with
``executemany`` in big transactions. Either does a million rows in minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import create_engine

from accounts.db import migrate
from accounts.db.engine import Database, DatabaseConfig
from accounts.db.unit_of_work import unit_of_work_factory
from accounts.domain.users import email_key, name_key
from accounts.models import User
from accounts.models.base import new_id
from accounts.security.passwords import HashParameters, PasswordHasher
from accounts.security.tokens import KeyRing
from accounts.services.signing_keys import SigningKeyService
from accounts.settings import load_settings

PASSWORD = "bench password 1"  # noqa: S105 - the known password of every seeded user
ADMIN_EMAIL = "admin@bench.example.com"
ADMIN_NAME = "Bench Admin"
CHUNK = 50_000
SAMPLE_SIZE = 1_000
SPREAD = dt.timedelta(days=365)
COLUMNS = (
    "id",
    "email",
    "email_key",
    "name",
    "name_key",
    "password_hash",
    "is_active",
    "is_superuser",
    "email_verified",
    "version",
    "created_at",
    "updated_at",
)


@dataclass
class SeedInfo:
    """What a benchmark needs to know about a seeded database."""

    url: str
    users: int
    admin_email: str = ADMIN_EMAIL
    password: str = PASSWORD
    seconds: float = 0.0
    hash_seconds: float = 0.0
    insert_seconds: float = 0.0
    # A spread-out sample of seeded users, for scenarios that read or log in as many.
    sample_ids: list[str] = field(default_factory=list)
    sample_emails: list[str] = field(default_factory=list)


def user_email(index: int) -> str:
    return f"user{index}@bench.example.com"


def hash_parameters() -> HashParameters:
    """The argon2id parameters the service is configured with (ACCOUNTS_PASSWORD_HASH_*)."""
    settings = load_settings()
    return HashParameters(
        memory_kib=settings.password_hash_memory_kib,
        time_cost=settings.password_hash_time_cost,
        parallelism=settings.password_hash_parallelism,
    )


async def precomputed_hash(password: str = PASSWORD) -> str:
    hasher = PasswordHasher(hash_parameters(), workers=1)
    try:
        return await hasher.hash(password)
    finally:
        hasher.close()


def _rows(
    n: int, password_hash: str, sample_every: int, info: SeedInfo
) -> Iterator[tuple[Any, ...]]:
    """N user rows (the superuser last, as the newest), recording a sample on the way."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = now - SPREAD
    step = SPREAD / max(n, 1)
    for i in range(n):
        user_id = new_id()
        email = user_email(i)
        name = f"Bench User {i}"
        created = start + step * i
        if i % sample_every == 0 and len(info.sample_ids) < SAMPLE_SIZE:
            info.sample_ids.append(str(user_id))
            info.sample_emails.append(email)
        yield (
            user_id,
            email,
            email_key(email),
            name,
            name_key(name),
            password_hash,
            True,
            False,
            False,
            1,
            created,
            created,
        )
    yield (
        new_id(),
        ADMIN_EMAIL,
        email_key(ADMIN_EMAIL),
        ADMIN_NAME,
        name_key(ADMIN_NAME),
        password_hash,
        True,
        True,
        True,
        1,
        now,
        now,
    )


def _chunks(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://…`` (SQLAlchemy's spelling) as asyncpg wants it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


async def _recreate_postgres_database(url: str) -> None:
    dsn = asyncpg_dsn(url)
    base, _, name = dsn.rpartition("/")
    name = name.split("?", 1)[0]
    if not name.replace("_", "").isalnum():
        raise ValueError(f"refusing an unusual database name {name!r}")
    admin = await asyncpg.connect(f"{base}/postgres", timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


def _remove_sqlite(url: str) -> None:
    path = sqlite_path(url)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)


async def _migrate_and_key(url: str) -> None:
    """The project's own migrations, then the first signing key as the service makes it."""
    database = Database(DatabaseConfig(url=url))
    try:
        await migrate.upgrade(database)
        await SigningKeyService(unit_of_work_factory(database), KeyRing()).load()
    finally:
        await database.dispose()


async def _insert_postgres(url: str, rows: Iterator[tuple[Any, ...]]) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        async with connection.transaction():
            for chunk in _chunks(rows, CHUNK):
                await connection.copy_records_to_table("users", records=chunk, columns=COLUMNS)
        # Fresh statistics and visibility map, as a database in service would have.
        await connection.execute("VACUUM ANALYZE users")
    finally:
        await connection.close()


def _insert_sqlite(url: str, rows: Iterator[tuple[Any, ...]]) -> None:
    # SQLAlchemy's own column types turn ids, booleans and UTC datetimes into exactly
    # what the service reads back; the driver's executemany does the inserting.
    engine = create_engine(f"sqlite:///{sqlite_path(url)}")
    table = User.__table__
    try:
        with engine.connect() as connection:
            raw = connection.connection.driver_connection
            assert isinstance(raw, sqlite3.Connection)
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute("PRAGMA synchronous=OFF")
            for chunk in _chunks(rows, CHUNK):
                with connection.begin():
                    connection.execute(
                        table.insert(), [dict(zip(COLUMNS, row, strict=True)) for row in chunk]
                    )
            raw.execute("PRAGMA synchronous=NORMAL")
            raw.execute("ANALYZE")
    finally:
        engine.dispose()


async def seed(url: str, n: int, *, password_hash: str | None = None) -> SeedInfo:
    """(Re)create the database at ``url``, migrate it and seed ``n`` users and one admin."""
    started = time.perf_counter()
    info = SeedInfo(url=url, users=n)
    is_sqlite = url.startswith("sqlite")
    if is_sqlite:
        _remove_sqlite(url)
    else:
        await _recreate_postgres_database(url)
    await _migrate_and_key(url)
    hashed = time.perf_counter()
    password_hash = password_hash or await precomputed_hash()
    info.hash_seconds = time.perf_counter() - hashed
    inserting = time.perf_counter()
    rows = _rows(n, password_hash, max(1, n // SAMPLE_SIZE), info)
    if is_sqlite:
        await asyncio.to_thread(_insert_sqlite, url, rows)
    else:
        await _insert_postgres(url, rows)
    info.insert_seconds = time.perf_counter() - inserting
    info.seconds = time.perf_counter() - started
    random.Random(n).shuffle(info.sample_emails)  # noqa: S311 - an order, not a secret
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", required=True, help="sqlite+aiosqlite:///… or postgresql+asyncpg://…"
    )
    parser.add_argument("--users", type=int, default=10_000)
    args = parser.parse_args()
    info = asyncio.run(seed(args.url, args.users))
    summary = {k: v for k, v in asdict(info).items() if not k.startswith("sample_")}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
