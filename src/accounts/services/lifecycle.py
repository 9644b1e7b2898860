"""Account lifecycle: verifying an email address and resetting a forgotten password.

Both send a link holding a single-use token. Only the token's hash is stored; the
token row and the email carrying it are written in one transaction, so a link is
never sent for a token that does not exist, nor a token stored whose email is lost.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlencode

from accounts.cache import StateCache
from accounts.db.unit_of_work import UnitOfWork, UnitOfWorkFactory
from accounts.domain.audit import AuditEventType
from accounts.domain.errors import FieldError, InvalidInput, InvalidOneTimeToken
from accounts.domain.text import has_forbidden_characters
from accounts.domain.users import lookup_key
from accounts.mail import MailTemplates
from accounts.models import OneTimeToken, User
from accounts.models.base import utcnow
from accounts.security.opaque import hash_token, new_token
from accounts.security.passwords import PasswordHasher
from accounts.services.audit import record
from accounts.services.outbox import MailOutbox
from accounts.services.passwords import PasswordRules
from accounts.services.principal import ClientInfo, Principal
from accounts.services.ratelimits import RateLimitPolicy

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"  # noqa: S105 - a token purpose, not a secret


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    public_url: str
    verification_ttl: dt.timedelta
    reset_ttl: dt.timedelta


class LifecycleService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        hasher: PasswordHasher,
        rules: PasswordRules,
        templates: MailTemplates,
        outbox: MailOutbox,
        limits: RateLimitPolicy,
        cache: StateCache,
        config: LifecycleConfig,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._rules = rules
        self._templates = templates
        self._outbox = outbox
        self._limits = limits
        self._cache = cache
        self._config = config

    async def request_email_verification(self, principal: Principal) -> None:
        """Send the caller a link that verifies their current address (no-op if verified).

        Raises:
            RateLimited: too many emails asked for, from this address or for this account.
        """
        user = principal.user
        await self._limits.email_request(principal.client.ip, user.email_key)
        if user.email_verified:
            return
        ttl = self._config.verification_ttl
        async with self._uow(write=True) as uow:
            self._send_link(
                uow,
                user,
                VERIFY_EMAIL,
                "/verify-email",
                ttl,
                hours=int(ttl.total_seconds() // 3600),
            )
            await uow.commit()
        self._outbox.notify()

    async def check_token(self, token: str, purpose: str) -> None:
        """Tell whether a link is still good without using it (for the pages behind links).

        Raises:
            InvalidOneTimeToken: with ``reason`` invalid, expired or used.
        """
        async with self._uow() as uow:
            stored = await uow.one_time_tokens.get_by_hash(hash_token(token), purpose)
        _usable(stored, utcnow())

    async def confirm_email(self, token: str, client: ClientInfo) -> User:
        """Mark the address the link was sent to as verified.

        Raises:
            InvalidOneTimeToken: unknown, expired or used token, or the account's
                address changed since the link was sent.
        """
        now = utcnow()
        async with self._uow(write=True) as uow:
            stored = _usable(
                await uow.one_time_tokens.get_by_hash(hash_token(token), VERIFY_EMAIL), now
            )
            user = await uow.users.get_for_update(stored.user_id)
            if user is None or user.email_key != stored.email_key:
                raise InvalidOneTimeToken("invalid")
            if not await uow.one_time_tokens.spend(stored.id, now):
                raise InvalidOneTimeToken("used")
            if not user.email_verified:
                user.email_verified = True
                user.version += 1
                user.updated_at = now
            record(
                uow,
                AuditEventType.USER_EMAIL_VERIFIED,
                user_id=user.id,
                actor_id=user.id,
                client=client,
            )
            await uow.commit()
        await self._cache.user_changed(user.id, user.version)
        return user

    async def accept_password_reset(self, email: str, client: ClientInfo) -> None:
        """Count a reset request against the limits, without looking the account up.

        Raises:
            RateLimited: too many resets asked for, from this address or for this email.
        """
        if not 1 <= len(email) <= 320 or has_forbidden_characters(email):
            raise InvalidInput(
                "email is not an address",
                [FieldError(("body", "email"), "is not a valid email address", "value_error")],
            )
        await self._limits.email_request(client.ip, lookup_key(email))

    async def request_password_reset(self, email: str) -> None:
        """Email a reset link if the address belongs to an account; otherwise do nothing.

        Callers answer the client *before* running this (see BackgroundJobs), so the
        answer and its timing are the same whether or not the account exists.
        """
        key = lookup_key(email)
        async with self._uow(write=True) as uow:
            user = await uow.users.get_by_email_key(key)
            if user is None:
                return
            ttl = self._config.reset_ttl
            self._send_link(
                uow,
                user,
                RESET_PASSWORD,
                "/reset-password",
                ttl,
                minutes=int(ttl.total_seconds() // 60),
            )
            await uow.commit()
        self._outbox.notify()

    async def reset_password(self, token: str, new_password: str, client: ClientInfo) -> User:
        """Set a new password from a reset link and end every session of the account.

        Raises:
            InvalidOneTimeToken: unknown, expired or used token.
            InvalidInput: the new password breaks a rule.
        """
        async with self._uow() as uow:
            stored = _usable(
                await uow.one_time_tokens.get_by_hash(hash_token(token), RESET_PASSWORD),
                utcnow(),
            )
            user = await uow.users.get(stored.user_id)
        if user is None:
            raise InvalidOneTimeToken("invalid")
        self._rules.check_new("new_password", new_password, email=user.email, name=user.name)
        new_hash = await self._hasher.hash(new_password)
        now = utcnow()
        async with self._uow(write=True) as uow:
            locked = await uow.users.get_for_update(stored.user_id)
            if locked is None:
                raise InvalidOneTimeToken("invalid")
            if not await uow.one_time_tokens.spend(stored.id, now):
                raise InvalidOneTimeToken("used")
            locked.password_hash = new_hash
            # updated_at is part of what a client sees, and the ETag must follow it.
            locked.version += 1
            locked.updated_at = now
            await uow.one_time_tokens.invalidate_for_user(locked.id, now)
            revoked = await uow.auth_sessions.revoke_all_for_user(locked.id, now)
            record(
                uow,
                AuditEventType.USER_PASSWORD_RESET,
                user_id=locked.id,
                actor_id=locked.id,
                client=client,
            )
            await uow.commit()
        await self._cache.sessions_revoked(revoked)
        await self._cache.user_changed(locked.id, locked.version)
        # Whoever holds the new password should not stay locked out by failures
        # that someone else piled up.
        await self._limits.clear_failed_logins(locked.email_key)
        return locked

    def _send_link(
        self,
        uow: UnitOfWork,
        user: User,
        purpose: str,
        path: str,
        ttl: dt.timedelta,
        **template_context: object,
    ) -> None:
        """Stage a new single-use token and the email carrying its link, in one unit of work."""
        token = new_token()
        now = utcnow()
        uow.one_time_tokens.stage(
            OneTimeToken(
                user_id=user.id,
                purpose=purpose,
                token_hash=hash_token(token),
                email_key=user.email_key,
                created_at=now,
                expires_at=now + ttl,
            )
        )
        link = f"{self._config.public_url}{path}?{urlencode({'token': token})}"
        content = self._templates.render(
            purpose, name=user.name, email=user.email, link=link, **template_context
        )
        self._outbox.enqueue(uow, user.email, content)


def _usable(stored: OneTimeToken | None, now: dt.datetime) -> OneTimeToken:
    if stored is None:
        raise InvalidOneTimeToken("invalid")
    if stored.used_at is not None:
        raise InvalidOneTimeToken("used")
    if stored.expires_at <= now:
        raise InvalidOneTimeToken("expired")
    return stored
