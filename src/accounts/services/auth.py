"""Authentication: login, refresh with rotation and reuse detection, logout, and
checking an access token on every request.

A *session* is one login. Its access tokens (short-lived JWTs) carry its id as
``sid``; its refresh tokens (opaque, single use) are stored by hash. Revoking the
session cuts off both at once, because every authenticated request checks that
its session is still live and its user still active.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from cachetools import TTLCache

from accounts.cache import Revoked, StateCache
from accounts.db.repositories.auth_sessions import Opening
from accounts.db.session_check import LiveUserLookup
from accounts.db.unit_of_work import UnitOfWork, UnitOfWorkFactory
from accounts.domain.audit import AuditEventType
from accounts.domain.errors import (
    FieldError,
    InactiveUser,
    InvalidCredentials,
    InvalidInput,
    NotAuthenticated,
)
from accounts.domain.text import has_forbidden_characters
from accounts.domain.users import PASSWORD_MAX_LENGTH, lookup_key
from accounts.metrics import Metrics
from accounts.models import AuthSession, RefreshToken, User
from accounts.models.base import new_id, utcnow
from accounts.security.opaque import hash_token, new_token
from accounts.security.passwords import Match, PasswordHasher
from accounts.security.tokens import (
    AccessClaims,
    AccessTokenCodec,
    InvalidAccessToken,
    UnknownKeyId,
)
from accounts.services.audit import new_event, record
from accounts.services.principal import ClientInfo, Principal
from accounts.services.ratelimits import RateLimitPolicy
from accounts.services.signing_keys import SigningKeyService

__all__ = ["AuthService", "ClientInfo", "Principal", "TokenPair", "login_key"]

LOGIN_EMAIL_MAX_LENGTH = 320
# Refresh tokens we issue are 43 characters; anything longer is not one of ours.
OPAQUE_TOKEN_MAX_LENGTH = 512
TOKEN_TYPE = "bearer"  # noqa: S105 - the OAuth2 token type
VERIFIED_TOKEN_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    token_type: str = TOKEN_TYPE


# Kept as a name of this module for callers that knew it here.
login_key = lookup_key


class AuthService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        hasher: PasswordHasher,
        access_tokens: AccessTokenCodec,
        signing_keys: SigningKeyService,
        limits: RateLimitPolicy,
        cache: StateCache,
        metrics: Metrics,
        live_user: LiveUserLookup,
        *,
        refresh_ttl_seconds: int,
    ) -> None:
        self._uow = uow
        self._live_user = live_user
        self._hasher = hasher
        self._access_tokens = access_tokens
        self._signing_keys = signing_keys
        self._limits = limits
        self._cache = cache
        self._metrics = metrics
        self._refresh_ttl = dt.timedelta(seconds=refresh_ttl_seconds)
        # Verified access tokens, so a repeated token skips the RSA check. Keyed by the
        # whole token: any change to it is a miss, and a miss is fully verified.
        self._verified: TTLCache[str, AccessClaims] = TTLCache(
            maxsize=VERIFIED_TOKEN_CACHE_SIZE, ttl=access_tokens.ttl_seconds
        )

    async def login(self, email: str, password: str, client: ClientInfo) -> TokenPair:
        """Exchange credentials for a new session's token pair.

        Raises:
            InvalidCredentials: unknown email or wrong password (same error, same time).
            InactiveUser: the password was right but the account is deactivated.
            InvalidInput: the password is longer than any valid one (never hashed).
            RateLimited: too many attempts from this address, for this account, or
                failures for this account.
        """
        _bounded("email", email, LOGIN_EMAIL_MAX_LENGTH)
        _bounded("password", password, PASSWORD_MAX_LENGTH)
        # No stored email contains these, and a database cannot even compare with
        # them (PostgreSQL refuses NUL): an unanswerable question, not a miss.
        _encodable("email", email, allow_controls=False)
        _encodable("password", password, allow_controls=True)
        key = login_key(email)
        await self._limits.login(client.ip, key)
        async with self._uow() as uow:
            user = await uow.users.get_by_email_key(key)
        stored_hash = user.password_hash if user is not None else None
        matched = await self._hasher.verify(stored_hash, password)
        if not matched or user is None:
            await self._limits.login_failed(key)
            await self._login_failed(user, client, "invalid_credentials")
            raise InvalidCredentials()
        if not user.is_active:
            await self._login_failed(user, client, "inactive")
            raise InactiveUser()
        # Hash before taking the write lock: hashing is slow, the lock is shared.
        new_hash = (
            await self._hasher.hash(password)
            if matched is Match.AS_TYPED or self._hasher.needs_rehash(user.password_hash)
            else None
        )
        now = utcnow()
        session = AuthSession(
            id=new_id(),
            user_id=user.id,
            created_at=now,
            last_used_at=now,
            expires_at=now + self._refresh_ttl,
            revoked_at=None,
            user_agent=_clip(client.user_agent, 512),
            ip=_clip(client.ip, 64),
        )
        refresh_token, first_token = _new_refresh_token(session, now)
        async with self._uow(write=True) as uow:
            # Made once the write has begun (on SQLite, once this process's writer
            # lock is held): the audit log is ordered by id, which carries its time.
            event = new_event(
                AuditEventType.USER_LOGIN_SUCCEEDED,
                user_id=user.id,
                actor_id=user.id,
                client=client,
                details={"session_id": str(session.id)},
            )
            if new_hash is not None:
                await uow.users.replace_password_hash(user.id, user.password_hash, new_hash)
            # The user may have been deactivated or deleted while the password was
            # verified: the session is opened only if they are still active.
            opening = await uow.auth_sessions.open_for_active_user(session, first_token, event)
            if opening is Opening.NO_USER:
                raise InvalidCredentials()
            if opening is Opening.INACTIVE_USER:
                raise InactiveUser()
            await uow.commit()
        self._metrics.login("success")
        return self._pair(user.id, session.id, refresh_token, now)

    async def _login_failed(self, user: User | None, client: ClientInfo, reason: str) -> None:
        # Recorded for unknown emails too (without the email: it may be a mistyped
        # password), so the two failures also cost the same database work.
        self._metrics.login("inactive" if reason == "inactive" else "failure")
        async with self._uow(write=True) as uow:
            record(
                uow,
                AuditEventType.USER_LOGIN_FAILED,
                user_id=user.id if user is not None else None,
                actor_id=None,
                client=client,
                details={"reason": reason},
            )
            await uow.commit()

    async def refresh(self, refresh_token: str, client: ClientInfo) -> TokenPair:
        """Spend a refresh token for a new pair in the same session.

        A token that was already spent means it was copied: the whole session is
        revoked, so neither the thief nor the user can go on with it.

        Raises:
            NotAuthenticated: unknown, expired or spent token; revoked session; inactive user.
            InvalidInput: the token is empty.
            RateLimited: too many refreshes from this address.
        """
        _presented_refresh_token(refresh_token)
        await self._limits.refresh(client.ip)
        now = utcnow()
        async with self._uow(write=True) as uow:
            stored = await uow.refresh_tokens.get_by_hash(hash_token(refresh_token))
            if stored is None:
                raise NotAuthenticated("Invalid refresh token.")
            # The session is locked before the token is spent: deleting a user deletes
            # its sessions and then their tokens (ON DELETE CASCADE), and a refresh that
            # took the token first and the session second could deadlock with it.
            if await uow.auth_sessions.get_for_update(stored.session_id) is None:
                raise NotAuthenticated("Invalid refresh token.")
            reused = stored.used_at is not None or not await uow.refresh_tokens.spend(
                stored.id, now
            )
            if reused:
                await self._revoke_reused(uow, stored.session_id, now, client)
            else:
                user, session, new_refresh_token = await self._rotate(uow, stored, now, client)
            await uow.commit()
        if reused:
            # After the unit of work: a cache round trip must not hold up other writers.
            await self._cache.sessions_revoked([stored.session_id])
            raise NotAuthenticated("Refresh token already used; the session is revoked.")
        return self._pair(user.id, session.id, new_refresh_token, now)

    async def _revoke_reused(
        self, uow: UnitOfWork, session_id: uuid.UUID, now: dt.datetime, client: ClientInfo
    ) -> None:
        await uow.auth_sessions.revoke(session_id, now)
        reused = await uow.auth_sessions.get(session_id)
        record(
            uow,
            AuditEventType.SESSION_REFRESH_REUSED,
            user_id=reused.user_id if reused is not None else None,
            actor_id=None,
            client=client,
            details={"session_id": str(session_id)},
        )

    async def _rotate(
        self, uow: UnitOfWork, stored: RefreshToken, now: dt.datetime, client: ClientInfo
    ) -> tuple[User, AuthSession, str]:
        """Slide the live session of a just-spent token and add its next token."""
        session = await uow.auth_sessions.get(stored.session_id)
        if (
            session is None
            or session.revoked_at is not None
            or session.expires_at <= now
            or stored.expires_at <= now
        ):
            raise NotAuthenticated("Invalid refresh token.")
        user = await uow.users.get(session.user_id)
        if user is None or not user.is_active:
            raise NotAuthenticated("Invalid refresh token.")
        # Sliding expiry: a session in use stays alive; one left idle for the
        # refresh lifetime ends.
        session.expires_at = now + self._refresh_ttl
        session.last_used_at = now
        if client.ip:
            session.ip = _clip(client.ip, 64)
        return user, session, await self._add_refresh_token(uow, session, now)

    async def logout(self, refresh_token: str, client: ClientInfo | None = None) -> None:
        """Revoke the session a refresh token belongs to.

        Raises:
            NotAuthenticated: the token is unknown, or its session already ended.
            InvalidInput: the token is empty.
        """
        _presented_refresh_token(refresh_token)
        digest = hash_token(refresh_token)
        # Looked up before any write: logout has no rate limit, and on SQLite a write
        # transaction queues behind every other writer, so a stream of made-up tokens
        # must not take the writer's turn.
        async with self._uow() as uow:
            if await uow.refresh_tokens.get_by_hash(digest) is None:
                raise NotAuthenticated("Invalid refresh token.")
        now = utcnow()
        async with self._uow(write=True) as uow:
            stored = await uow.refresh_tokens.get_by_hash(digest)
            if stored is None or not await uow.auth_sessions.revoke(stored.session_id, now):
                raise NotAuthenticated("Invalid refresh token.")
            session = await uow.auth_sessions.get(stored.session_id)
            user_id = session.user_id if session is not None else None
            record(
                uow,
                AuditEventType.SESSION_REVOKED,
                user_id=user_id,
                actor_id=user_id,
                client=client,
                details={"session_id": str(stored.session_id), "reason": "logout"},
            )
            await uow.commit()
        await self._cache.sessions_revoked([stored.session_id])

    async def logout_session(self, principal: Principal) -> None:
        """Revoke the caller's own session (logout with a bearer token)."""
        async with self._uow(write=True) as uow:
            await uow.auth_sessions.revoke(principal.session_id, utcnow())
            record(
                uow,
                AuditEventType.SESSION_REVOKED,
                user_id=principal.user.id,
                actor_id=principal.user.id,
                client=principal.client,
                details={"session_id": str(principal.session_id), "reason": "logout"},
            )
            await uow.commit()
        await self._cache.sessions_revoked([principal.session_id])

    async def authenticate(self, access_token: str, client: ClientInfo | None = None) -> Principal:
        """Check an access token and that its session and user are still good.

        Warm, this costs no database round trip: the token's verification is cached
        in-process and the session and user state in the shared cache, which a
        revocation on any instance updates before it answers (see accounts.cache).

        Raises:
            NotAuthenticated: forged, expired or foreign token; revoked session;
                deleted or deactivated user.
        """
        claims = self._verified.get(access_token)
        if claims is None or claims.expires_at <= utcnow():
            claims = await self._verify(access_token)
            self._verified[access_token] = claims
        client = client or ClientInfo()
        cached = await self._cache.get(claims.session_id, claims.user_id)
        if isinstance(cached, Revoked):
            raise NotAuthenticated()
        if cached is not None:
            return Principal(user=cached, session_id=claims.session_id, client=client)
        user = await self._live_user(claims.session_id, claims.user_id, utcnow())
        if user is None:
            raise NotAuthenticated()
        await self._cache.put(claims.session_id, user)
        return Principal(user=user, session_id=claims.session_id, client=client)

    async def _verify(self, access_token: str) -> AccessClaims:
        try:
            return self._access_tokens.verify(access_token)
        except UnknownKeyId:
            # Perhaps another instance created or rotated a key since we loaded ours.
            if not await self._signing_keys.reload_if_stale():
                raise NotAuthenticated() from None
            try:
                return self._access_tokens.verify(access_token)
            except InvalidAccessToken:
                raise NotAuthenticated() from None
        except InvalidAccessToken:
            raise NotAuthenticated() from None

    async def _add_refresh_token(
        self, uow: UnitOfWork, session: AuthSession, now: dt.datetime
    ) -> str:
        token, row = _new_refresh_token(session, now)
        await uow.refresh_tokens.add(row)
        return token

    def _pair(
        self, user_id: uuid.UUID, session_id: uuid.UUID, refresh_token: str, now: dt.datetime
    ) -> TokenPair:
        return TokenPair(
            access_token=self._access_tokens.issue(user_id, session_id, now),
            expires_in=self._access_tokens.ttl_seconds,
            refresh_token=refresh_token,
        )


def _new_refresh_token(session: AuthSession, now: dt.datetime) -> tuple[str, RefreshToken]:
    """A new refresh token for ``session``, and the row that stores it (by hash)."""
    token = new_token()
    return token, RefreshToken(
        id=new_id(),
        session_id=session.id,
        token_hash=hash_token(token),
        created_at=now,
        expires_at=session.expires_at,
        used_at=None,
    )


def _presented_refresh_token(value: str) -> None:
    """Refuse an empty refresh token as bad input, and one longer than any we issue as
    what it is: not one of ours (an access token pasted in its place, say), a 401.

    Raises: InvalidInput when empty; NotAuthenticated when oversized.
    """
    if len(value) > OPAQUE_TOKEN_MAX_LENGTH:
        raise NotAuthenticated("Invalid refresh token.")
    _bounded("refresh_token", value, OPAQUE_TOKEN_MAX_LENGTH)


def _bounded(field: str, value: str, max_length: int) -> None:
    """Refuse an empty or oversized value before any work (never hash a huge password).

    Raises: InvalidInput naming ``field``.
    """
    if not 1 <= len(value) <= max_length:
        raise InvalidInput(
            f"{field} must be 1-{max_length} characters",
            [FieldError(("body", field), f"must be 1-{max_length} characters", "value_error")],
        )


def _encodable(field: str, value: str, *, allow_controls: bool) -> None:
    """Raises: InvalidInput when ``value`` holds characters no stored value can."""
    if has_forbidden_characters(value, allow_controls=allow_controls):
        raise InvalidInput(
            f"{field} contains characters that are not allowed",
            [
                FieldError(
                    ("body", field), "contains characters that are not allowed", "value_error"
                )
            ],
        )


def _clip(value: str | None, length: int) -> str | None:
    """A client-supplied string (user agent, IP) fit to store: printable, bounded."""
    if not value:
        return None
    return "".join(char for char in value if char.isprintable())[:length] or None
