"""Which database errors mean "the database is away", so the edges answer 503, not 500."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# SQLSTATE classes that mean "the database is away": 08 connection exception,
# 53 insufficient resources, 57P operator intervention (shutting down, starting up).
UNAVAILABLE_SQLSTATES = ("08", "53", "57P")


def has_unavailable_sqlstate(exc: BaseException) -> bool:
    """True for a driver error (asyncpg's, or one wrapped by SQLAlchemy) whose SQLSTATE
    says the server is unreachable, out of resources or shutting down."""
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(UNAVAILABLE_SQLSTATES)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc``, raised through SQLAlchemy, means the database is unreachable."""
    # OSError: the driver's connect() failed at the socket (refused, reset), which
    # SQLAlchemy passes through unwrapped.
    if isinstance(exc, PoolTimeoutError | OperationalError | InterfaceError | OSError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    return exc.orig is not None and has_unavailable_sqlstate(exc.orig)
