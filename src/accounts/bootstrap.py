"""The composition root: ``build(settings)`` wires every service from settings.

Nothing is built at import time. The app's lifespan (or a CLI command, or a test)
calls ``build``, then ``start`` before serving and ``close`` after.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network

from accounts.breaker import RedisBreaker
from accounts.cache import NullStateCache, StateCache
from accounts.db import migrate
from accounts.db.engine import Database, DatabaseConfig
from accounts.db.session_check import SessionCheck
from accounts.db.unit_of_work import UnitOfWorkFactory, unit_of_work_factory
from accounts.mail import LogMailer, Mailer, MailTemplates, SmtpConfig, SmtpMailer
from accounts.metrics import Metrics
from accounts.ratelimit import RateLimiter
from accounts.security.common_passwords import load_common_passwords
from accounts.security.passwords import HashParameters, PasswordHasher
from accounts.security.tokens import AccessTokenCodec, KeyRing
from accounts.services.audit import AuditService
from accounts.services.auth import AuthService
from accounts.services.jobs import BackgroundJobs
from accounts.services.lifecycle import LifecycleConfig, LifecycleService
from accounts.services.outbox import MailOutbox
from accounts.services.passwords import PasswordRules
from accounts.services.ratelimits import RateLimitConfig, RateLimitPolicy
from accounts.services.sessions import SessionService
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
    sessions: SessionService
    lifecycle: LifecycleService
    audit: AuditService
    outbox: MailOutbox
    jobs: BackgroundJobs
    cache: StateCache
    limits: RateLimitPolicy
    metrics: Metrics
    breaker: RedisBreaker
    trusted_proxies: list[IPv4Network | IPv6Network]
    _loops: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def uses_redis(self) -> bool:
        return self.settings.redis_url is not None

    async def redis_ready(self) -> bool:
        return await self.cache.ping()

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

    def start_background(self) -> None:
        """Start the loops a serving process runs: the mail outbox, the key-ring reload."""
        self.outbox.start()
        self._loops.append(
            asyncio.get_running_loop().create_task(
                self.signing_keys.run_periodic_reload(), name="signing-key-reload"
            )
        )

    async def close(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.jobs.drain(grace_seconds=5.0)
        await self.outbox.stop()
        await self.cache.close()
        await self.limits.close()
        await self.database.dispose()
        self.hasher.close()


def hash_threads(server_workers: int, cores: int | None = None) -> int:
    """Hashing threads per worker process: the cores shared among the workers.

    argon2id is CPU-bound and takes its memory cost (19 MiB by default) per hash in
    flight, so more threads than cores in all add only memory and queueing in the
    kernel: two workers on two cores get one thread each, one worker gets two.
    """
    available = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, available // max(1, server_workers))


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
        workers=settings.password_hash_workers or hash_threads(settings.workers),
    )
    metrics = Metrics(database.pool_stats)
    breaker = RedisBreaker()
    cache: StateCache = NullStateCache()
    if settings.redis_url is not None:
        # Imported here: redis-py costs ~5 MiB per process, and only this needs it.
        from accounts.cache_redis import RedisStateCache, connect

        cache = RedisStateCache(
            connect(settings.redis_url),
            breaker,
            tombstone_ttl_seconds=settings.access_token_ttl_seconds + 60,
        )
    limits = RateLimitPolicy(
        RateLimiter(
            enabled=settings.rate_limits == "on", redis_url=settings.redis_url, breaker=breaker
        ),
        RateLimitConfig(
            login_per_ip_email=settings.rate_limit_login_per_ip_email,
            login_per_ip=settings.rate_limit_login_per_ip,
            failed_logins_per_account=settings.rate_limit_failed_logins_per_account,
            register_per_ip=settings.rate_limit_register_per_ip,
            refresh_per_ip=settings.rate_limit_refresh_per_ip,
            email_requests_per_ip=settings.rate_limit_email_requests_per_ip,
            email_requests_per_account=settings.rate_limit_email_requests_per_account,
        ),
        metrics,
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
        limits,
        cache,
        metrics,
        SessionCheck(database),
        refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
    )
    rules = PasswordRules(load_common_passwords())
    users = UserService(
        uow, hasher, rules, limits, cache, registration_open=settings.registration_open
    )
    outbox = MailOutbox(uow, build_mailer(settings), max_attempts=settings.mail_max_attempts)
    lifecycle = LifecycleService(
        uow,
        hasher,
        rules,
        MailTemplates(),
        outbox,
        limits,
        cache,
        LifecycleConfig(
            public_url=settings.effective_public_url,
            verification_ttl=dt.timedelta(seconds=settings.email_verification_ttl_seconds),
            reset_ttl=dt.timedelta(seconds=settings.password_reset_ttl_seconds),
        ),
    )
    return Container(
        settings=settings,
        database=database,
        uow=uow,
        hasher=hasher,
        key_ring=key_ring,
        signing_keys=signing_keys,
        auth=auth,
        users=users,
        sessions=SessionService(uow, cache),
        lifecycle=lifecycle,
        audit=AuditService(uow),
        outbox=outbox,
        jobs=BackgroundJobs(),
        cache=cache,
        limits=limits,
        metrics=metrics,
        breaker=breaker,
        trusted_proxies=settings.trusted_proxy_networks,
    )


def build_mailer(settings: Settings) -> Mailer:
    """SMTP when ACCOUNTS_SMTP_HOST is set; otherwise messages go to the log."""
    if settings.smtp_host is None:
        return LogMailer(settings.email_from)
    return SmtpMailer(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            tls=settings.smtp_tls,
            timeout=settings.smtp_timeout_seconds,
            sender=settings.email_from,
        )
    )
