"""The shared signing key ring: created on first start, loaded by every instance.

The keys live in the database so that every instance, and every restart, signs and
verifies with the same ring. If two instances start on an empty database at once,
each may create a key; both are kept and published, and a token signed by one is
still accepted by the other because an unknown ``kid`` triggers a (throttled)
reload of the ring.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence

import structlog

from accounts.db.unit_of_work import UnitOfWorkFactory
from accounts.models import SigningKey
from accounts.models.base import utcnow
from accounts.security.keys import generate_key, load_key
from accounts.security.tokens import KeyRing

RELOAD_INTERVAL_SECONDS = 10.0
PERIODIC_RELOAD_SECONDS = 60.0
logger = structlog.get_logger("accounts.keys")


class SigningKeyService:
    def __init__(self, uow: UnitOfWorkFactory, ring: KeyRing) -> None:
        self._uow = uow
        self.ring = ring
        # When an unknown kid last forced a reload: throttled on its own, so a load at
        # start-up or by the periodic loop does not delay picking up a new key.
        self._forced_reload_at = float("-inf")

    async def load(self) -> None:
        """Load the ring, creating the first key if there is none."""
        async with self._uow(write=True) as uow:
            rows = await uow.signing_keys.all()
            if not rows:
                key = generate_key()
                row = await uow.signing_keys.add(
                    SigningKey(kid=key.kid, private_key_pem=key.private_pem())
                )
                await uow.commit()
                rows = [row]
        self._install(rows)

    async def rotate(self, *, token_ttl_seconds: int) -> str:
        """Make a new key the signing key; returns its kid.

        The keys it replaces are retired: they stay in the JWKS, and keep verifying,
        until every token they signed has expired. Keys retired longer ago than that
        are deleted here. Other instances start signing with the new key when they
        next reload the ring (at most ``RELOAD_INTERVAL_SECONDS`` later, or at once
        when they meet a token it signed).
        """
        key = generate_key()
        now = utcnow()
        async with self._uow(write=True) as uow:
            await uow.signing_keys.delete_retired_before(
                now - dt.timedelta(seconds=token_ttl_seconds)
            )
            await uow.signing_keys.retire_active(now)
            await uow.signing_keys.add(
                SigningKey(kid=key.kid, private_key_pem=key.private_pem(), created_at=now)
            )
            await uow.commit()
        await self.reload()
        return key.kid

    async def reload(self) -> None:
        async with self._uow() as uow:
            rows = await uow.signing_keys.all()
        self._install(rows)

    async def run_periodic_reload(self) -> None:
        """Reload the ring now and then, so a rotation elsewhere reaches this instance."""
        while True:
            await asyncio.sleep(PERIODIC_RELOAD_SECONDS)
            try:
                await self.reload()
            except Exception:
                logger.exception("reloading the signing keys failed; will retry")

    async def reload_if_stale(self) -> bool:
        """Reload the ring unless it was loaded moments ago; True if it was reloaded.

        Throttled, because an unknown ``kid`` is what a forged token carries too.
        """
        if time.monotonic() - self._forced_reload_at < RELOAD_INTERVAL_SECONDS:
            return False
        self._forced_reload_at = time.monotonic()
        await self.reload()
        return True

    def _install(self, rows: Sequence[SigningKey]) -> None:
        # Retired keys verify but never sign: order them first, the newest active key last.
        ordered = sorted(rows, key=lambda row: (row.retired_at is None, row.created_at, row.kid))
        self.ring.replace([load_key(row.private_key_pem) for row in ordered])
