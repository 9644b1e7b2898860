"""Which requests are counted against which limits, and what happens when one is hit.

Called from the services, so REST and GraphQL share every limit by construction.
Keys are built from values a client cannot choose freely (the socket peer, or a
trusted proxy's report of it) and from the lower-cased email *as typed*: whether an
account exists never changes which limit applies, so limits reveal nothing.

The per-account failed-login limit stops credential stuffing spread over many IPs.
It is a moving window, so it lets the account be tried again as failures age out;
a password reset clears it at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from limits import RateLimitItem

from accounts.domain.errors import RateLimited
from accounts.metrics import Metrics
from accounts.ratelimit import RateLimiter


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    login_per_ip_email: str
    login_per_ip: str
    failed_logins_per_account: str
    register_per_ip: str
    refresh_per_ip: str
    email_requests_per_ip: str
    email_requests_per_account: str


class RateLimitPolicy:
    def __init__(self, limiter: RateLimiter, config: RateLimitConfig, metrics: Metrics) -> None:
        self._limiter = limiter
        self._metrics = metrics
        self._login_ip_email = limiter.parse(config.login_per_ip_email)
        self._login_ip = limiter.parse(config.login_per_ip)
        self._failed_logins = limiter.parse(config.failed_logins_per_account)
        self._register = limiter.parse(config.register_per_ip)
        self._refresh = limiter.parse(config.refresh_per_ip)
        self._email_ip = limiter.parse(config.email_requests_per_ip)
        self._email_account = limiter.parse(config.email_requests_per_account)

    async def close(self) -> None:
        await self._limiter.close()

    async def _count(self, name: str, item: RateLimitItem, *key: str) -> None:
        verdict = await self._limiter.hit(item, name, *key)
        if not verdict.allowed:
            self._metrics.rejected(name)
            raise RateLimited(verdict.reset_after, limit=verdict.limit)

    async def login(self, ip: str | None, account: str) -> None:
        """Raises: RateLimited."""
        await self._count("login_ip", self._login_ip, ip or "-")
        await self._count("login_ip_email", self._login_ip_email, ip or "-", account)
        exceeded = await self._limiter.exceeded(self._failed_logins, "failed_login", account)
        if exceeded is not None:
            self._metrics.rejected("failed_logins_account")
            raise RateLimited(
                exceeded.reset_after,
                "Too many failed logins for this account; try later or reset the password.",
                limit=exceeded.limit,
            )

    async def login_failed(self, account: str) -> None:
        await self._limiter.hit(self._failed_logins, "failed_login", account)

    async def clear_failed_logins(self, account: str) -> None:
        await self._limiter.clear(self._failed_logins, "failed_login", account)

    async def register(self, ip: str | None) -> None:
        """Raises: RateLimited."""
        await self._count("register_ip", self._register, ip or "-")

    async def refresh(self, ip: str | None) -> None:
        """Raises: RateLimited."""
        await self._count("refresh_ip", self._refresh, ip or "-")

    async def email_request(self, ip: str | None, account: str) -> None:
        """A verification or reset email asked for. Raises: RateLimited."""
        await self._count("email_ip", self._email_ip, ip or "-")
        await self._count("email_account", self._email_account, account)
