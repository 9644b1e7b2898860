"""The composition root: ``build(settings)`` wires every service from settings.

Nothing is built at import time. The app's lifespan (or a CLI command, or a test)
calls ``build``, then ``start`` before serving and ``close`` after.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounts.db import migrate
from accounts.db.engine import Database, DatabaseConfig
from accounts.db.unit_of_work import UnitOfWorkFactory, unit_of_work_factory
from accounts.security.passwords import HashParameters, PasswordHasher
from accounts.security.tokens import AccessTokenCodec, KeyRing
from accounts.services.auth import AuthService
from accounts.services.signing_keys import SigningKeyService
from accounts.services.users import UserService
from accounts.settings import Settings


@dataclass
class Container:
    settings: Settings
    database: Database
    uow: UnitOfWorkFactory
    hasher: PasswordHasher
    key_ring: KeyRing
    signing_keys: SigningKeyService
    auth: AuthService
    users: UserService

    async def start(self, *, migrate_sqlite: bool = True) -> None:
        """Make the schema current (SQLite) or insist it is (PostgreSQL), then load keys.

        Raises:
            migrate.DatabaseNotMigrated: PostgreSQL has pending migrations.
        """
        if self.database.is_sqlite and migrate_sqlite:
            await migrate.upgrade(self.database)
        else:
            await migrate.ensure_migrated(self.database)
        await self.signing_keys.load()

    async def close(self) -> None:
        await self.database.dispose()
        self.hasher.close()


def build(settings: Settings) -> Container:
    database = Database(
        DatabaseConfig(
            url=settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            pool_timeout=settings.database_pool_timeout_seconds,
        )
    )
    uow = unit_of_work_factory(database)
    hasher = PasswordHasher(
        HashParameters(
            memory_kib=settings.password_hash_memory_kib,
            time_cost=settings.password_hash_time_cost,
            parallelism=settings.password_hash_parallelism,
        ),
        workers=settings.password_hash_workers,
    )
    key_ring = KeyRing()
    signing_keys = SigningKeyService(uow, key_ring)
    access_tokens = AccessTokenCodec(
        key_ring,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    auth = AuthService(
        uow,
        hasher,
        access_tokens,
        signing_keys,
        refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
    )
    users = UserService(uow, hasher, registration_open=settings.registration_open)
    return Container(
        settings=settings,
        database=database,
        uow=uow,
        hasher=hasher,
        key_ring=key_ring,
        signing_keys=signing_keys,
        auth=auth,
        users=users,
    )
