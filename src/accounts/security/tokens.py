"""RS256 access tokens: the key ring that signs them and the checks that verify them.

Verification trusts nothing in the token header but ``kid``: the algorithm is fixed
to RS256 (so ``alg: none`` and HS256-keyed-with-the-public-key both fail), the key
comes only from our own ring, and ``iss``, ``aud``, ``exp``, ``iat``, ``sub``,
``sid`` and ``jti`` are all required.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from accounts.security.keys import RsaKey

ALGORITHM = "RS256"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "iat", "exp", "jti"]
# The last second datetime can represent (9999-12-31T23:59:59Z). PyJWT takes any
# value int() accepts for exp and iat ("123", 1.5, 10**30); we issue only integers.
LATEST_TIMESTAMP = 253_402_300_799


class InvalidAccessToken(Exception):
    """The token is malformed, forged, expired or not for us."""


class UnknownKeyId(InvalidAccessToken):
    """The token names a key this ring does not hold (yet)."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: str
    expires_at: dt.datetime


class KeyRing:
    """The keys tokens are verified with; the newest signs."""

    def __init__(self, keys: Sequence[RsaKey] = ()) -> None:
        self._keys: dict[str, RsaKey] = {}
        self._signing: RsaKey | None = None
        self.replace(keys)

    def replace(self, keys: Sequence[RsaKey]) -> None:
        """Swap in the ring's full contents, oldest first; the last key signs."""
        self._keys = {key.kid: key for key in keys}
        self._signing = keys[-1] if keys else None

    @property
    def signing_key(self) -> RsaKey:
        if self._signing is None:
            raise RuntimeError("the key ring is empty: the service has not started")
        return self._signing

    def get(self, kid: str) -> RsaKey | None:
        return self._keys.get(kid)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self._keys.values()]}


class AccessTokenCodec:
    def __init__(self, ring: KeyRing, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._ring = ring
        self._issuer = issuer
        self._audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: uuid.UUID, session_id: uuid.UUID, now: dt.datetime) -> str:
        key = self._ring.signing_key
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "iat": int(now.timestamp()),
            "exp": int(now.timestamp()) + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})

    def verify(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidAccessToken(str(exc)) from None
        if header.get("alg") != ALGORITHM:
            raise InvalidAccessToken("unexpected algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidAccessToken("no key id")
        key = self._ring.get(kid)
        if key is None:
            raise UnknownKeyId(kid)
        try:
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS},
            )
            _timestamp(claims, "iat")
            return AccessClaims(
                user_id=uuid.UUID(str(claims["sub"])),
                session_id=uuid.UUID(str(claims["sid"])),
                token_id=str(claims["jti"]),
                expires_at=dt.datetime.fromtimestamp(_timestamp(claims, "exp"), dt.UTC),
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidAccessToken(str(exc)) from None


def _timestamp(claims: dict[str, Any], name: str) -> int:
    value = claims[name]
    if type(value) is not int or not 0 <= value <= LATEST_TIMESTAMP:
        raise InvalidAccessToken(f"{name} is not a timestamp")
    return value
