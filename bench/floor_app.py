"""The floor: the least an authenticated read can cost in Python on this stack.

A bare Starlette app with one route, ``GET /me``, that does only what any
authenticated read must: verify the bearer token (PyJWT, RS256, the same ``iss``,
``aud`` and required claims as the service) against the service's own public keys,
read the user with one ``SELECT … FROM users WHERE id = $1`` by primary key with the
same driver (an asyncpg pool on PostgreSQL, aiosqlite connections on SQLite), and
return the user as JSON. No ORM, no dependency injection, no validation models, no
middleware, no logging, no session check: the service's ``GET /api/v1/users/me`` has
to do all of this and more, so its throughput over this app's, measured on the same
machine at the same moment and served by uvicorn the same way, says how much the
service's own layers cost.

    BENCH_FLOOR_DATABASE_URL=postgresql+asyncpg://… python -m bench.floor_app --port 8100

The signing keys are read from the ``signing_keys`` table at start-up, as the
service loads its key ring.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
import asyncpg
import jwt
import orjson
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from accounts.http.server import UVICORN_OPTIONS
from accounts.security.keys import thumbprint

URL_VARIABLE = "BENCH_FLOOR_DATABASE_URL"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "iat", "exp", "jti"]
USER_COLUMNS = "id, email, name, is_active, is_superuser, email_verified, created_at, updated_at"
# The service's pool: ACCOUNTS_DATABASE_POOL_SIZE (10) plus _MAX_OVERFLOW (10).
POOL_MIN, POOL_MAX = 10, 20
SQLITE_CONNECTIONS = 10

Fetch = Callable[[uuid.UUID], Awaitable["dict[str, Any] | None"]]


def _iso(value: dt.datetime | str) -> str:
    if isinstance(value, str):  # SQLite: naive UTC text, as SQLAlchemy stores it
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _public_keys(rows: list[tuple[str, str]]) -> dict[str, rsa.RSAPublicKey]:
    keys: dict[str, rsa.RSAPublicKey] = {}
    for _kid, pem in rows:
        private = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
        assert isinstance(private, rsa.RSAPrivateKey)
        public = private.public_key()
        keys[thumbprint(public)] = public
    return keys


async def _keep_session_state(_connection: asyncpg.Connection) -> None:
    """No reset on release: by default asyncpg's pool sends ``RESET ALL; CLOSE ALL; …``
    as each connection goes back, a round trip per request. The floor only runs
    single statements in autocommit, leaving nothing to reset (asyncpg still clears
    its own listeners and any stray transaction)."""


class Backend:
    """One SELECT by primary key, with the driver the service uses for ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.keys: dict[str, rsa.RSAPublicKey] = {}
        self._pool: asyncpg.Pool | None = None
        self._sqlite: asyncio.Queue[aiosqlite.Connection] | None = None

    async def start(self) -> None:
        if self.url.startswith("sqlite"):
            path = self.url.split(":///", 1)[1]
            self._sqlite = asyncio.Queue()
            for _ in range(SQLITE_CONNECTIONS):
                connection = await aiosqlite.connect(path)
                for pragma in (
                    "PRAGMA journal_mode=WAL",
                    "PRAGMA busy_timeout=30000",
                    "PRAGMA synchronous=NORMAL",
                ):
                    await connection.execute(pragma)
                self._sqlite.put_nowait(connection)
            rows = await self._sqlite_all("SELECT kid, private_key_pem FROM signing_keys", ())
        else:
            dsn = self.url.replace("postgresql+asyncpg://", "postgresql://", 1)
            self._pool = await asyncpg.create_pool(
                dsn, min_size=POOL_MIN, max_size=POOL_MAX, reset=_keep_session_state
            )
            records = await self._pool.fetch("SELECT kid, private_key_pem FROM signing_keys")
            rows = [(record["kid"], record["private_key_pem"]) for record in records]
        self.keys = _public_keys(rows)
        if not self.keys:
            raise RuntimeError("no signing keys: start the service once, or seed the database")

    async def _sqlite_all(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        assert self._sqlite is not None
        connection = await self._sqlite.get()
        try:
            async with connection.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        finally:
            self._sqlite.put_nowait(connection)

    async def user(self, user_id: uuid.UUID) -> dict[str, Any] | None:
        if self._pool is not None:
            row = await self._pool.fetchrow(
                f"SELECT {USER_COLUMNS} FROM users WHERE id = $1",  # noqa: S608 - constant
                user_id,
            )
            if row is None:
                return None
            values = tuple(row)
        else:
            rows = await self._sqlite_all(
                f"SELECT {USER_COLUMNS} FROM users WHERE id = ?",  # noqa: S608 - constant
                (user_id.hex,),  # SQLAlchemy's Uuid on SQLite: 32 hex digits
            )
            if not rows:
                return None
            values = tuple(rows[0])
        (row_id, email, name, active, superuser, verified, created, updated) = values
        return {
            "id": str(uuid.UUID(str(row_id))),
            "email": email,
            "name": name,
            "is_active": bool(active),
            "is_superuser": bool(superuser),
            "email_verified": bool(verified),
            "created_at": _iso(created),
            "updated_at": _iso(updated),
        }

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        if self._sqlite is not None:
            while not self._sqlite.empty():
                await self._sqlite.get_nowait().close()


UNAUTHORIZED = Response(
    b'{"title":"Unauthorized","status":401}',
    status_code=401,
    media_type="application/problem+json",
    headers={"WWW-Authenticate": "Bearer"},
)


def create_app() -> Starlette:
    backend = Backend(os.environ[URL_VARIABLE])
    issuer = os.environ.get("ACCOUNTS_JWT_ISSUER", "accounts")
    audience = os.environ.get("ACCOUNTS_JWT_AUDIENCE", "accounts")

    async def me(request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return UNAUTHORIZED
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = backend.keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                return UNAUTHORIZED
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=audience,
                issuer=issuer,
                options={"require": REQUIRED_CLAIMS},
            )
            user_id = uuid.UUID(str(claims["sub"]))
        except (jwt.PyJWTError, ValueError):
            return UNAUTHORIZED
        user = await backend.user(user_id)
        if user is None or not user["is_active"]:
            return UNAUTHORIZED
        return Response(orjson.dumps(user), media_type="application/json")

    async def healthz(_request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await backend.start()
        try:
            yield
        finally:
            await backend.close()

    return Starlette(
        routes=[Route("/me", me), Route("/healthz", healthz)],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the floor app (see bench/README.md).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # With the options `accounts serve` runs uvicorn with (accounts/http/server.py).
    uvicorn.run(
        "bench.floor_app:create_app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        **UVICORN_OPTIONS,
    )


if __name__ == "__main__":
    main()
