"""The start-up check that the configured database can be opened at all.

Every command that touches the database runs it first, so that a missing SQLite
directory, a PostgreSQL database or role that does not exist, a wrong password or a
server that does not answer ends in one line naming the cause, not in a driver
traceback from the middle of a migration. The message never carries the URL's password.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from accounts.db.engine import Database

MASK = "***"


class DatabaseUnreachable(Exception):
    """The database cannot be opened or reached; the message says why, password-free."""


# A server that accepts connections and then says nothing (a host that drops packets
# after the handshake, a proxy with no backend) would otherwise hold start-up for the
# driver's own timeout, a minute for asyncpg, before the one-line error.
CHECK_TIMEOUT_SECONDS = 15.0


async def check_connection(
    database: Database, *, timeout_seconds: float = CHECK_TIMEOUT_SECONDS
) -> None:
    """Open one connection and run ``SELECT 1``, within ``timeout_seconds``.

    Raises:
        DatabaseUnreachable: the driver could not connect, refused the connection, or
            no answer came in time.
    """
    url = database.config.url
    try:
        async with asyncio.timeout(timeout_seconds):
            if database.is_sqlite:
                await asyncio.to_thread(_open_sqlite, url)
            else:
                await database.ping()
    except TimeoutError:
        raise DatabaseUnreachable(f"no answer within {timeout_seconds:g} s") from None
    except (DBAPIError, OSError) as exc:  # OSError covers refused, unresolvable
        raise DatabaseUnreachable(describe_failure(exc, url)) from None


def _open_sqlite(url: str) -> None:
    # Through the standard library's driver, not aiosqlite: when aiosqlite fails to
    # open a file, its worker thread reports back to an event loop that asyncio.run
    # has closed by then, and prints a traceback of its own on the way out. Reading
    # sqlite_master reads the file's header, so a file that is not a database fails
    # here too.
    engine = create_engine(make_url(url).set(drivername="sqlite"), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT count(*) FROM sqlite_master"))
    finally:
        engine.dispose()


def describe_failure(exc: BaseException, url: str) -> str:
    """One line: the driver's own reason (not SQLAlchemy's wrapper around it), with a
    hint for the common SQLite case, and the URL's password masked wherever it appears."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    reason = " ".join(str(cause).split()) or type(cause).__name__
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        directory = Path(parsed.database).parent
        if not directory.is_dir():
            reason += f" (the directory {directory} does not exist)"
    return mask_password(reason, url)


def mask_password(text: str, url: str) -> str:
    """``text`` with the URL's password, as written and as decoded, replaced by ***."""
    parsed = make_url(url)
    password = parsed.password
    if not password:
        return text
    for secret in (password, quote(password, safe="")):
        text = text.replace(secret, MASK)
    return text


def display_url(url: str) -> str:
    """The URL as it may be shown: the password replaced by ***."""
    return make_url(url).render_as_string(hide_password=True)
