"""The email outbox: enqueueing messages with their transaction, and delivering them.

``MailOutbox.enqueue`` stages a message in the caller's unit of work. The
dispatcher loop (started with the app) claims due messages with a lease, sends
each outside any transaction, then marks it sent (scrubbing its bodies, which
hold one-time links) or schedules a retry with exponential backoff. After the last
attempt the message is kept as failed and an error is logged: nothing is dropped
silently. With several instances, the lease means each message is sent by one of
them at a time; a crash between sending and marking gives a second delivery, not
a lost one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from contextlib import suppress

import structlog

from accounts.db.unit_of_work import UnitOfWork, UnitOfWorkFactory
from accounts.mail import DeliveryError, EmailContent, Mailer
from accounts.models import OutboxEmail
from accounts.models.base import utcnow

logger = structlog.get_logger("accounts.outbox")

# Longer than the longest allowed SMTP timeout (ACCOUNTS_SMTP_TIMEOUT_SECONDS ≤ 60), so a
# slow send never outlives its lease and lets another dispatcher send it again.
LEASE = dt.timedelta(seconds=120)
BATCH_SIZE = 20
FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 3600.0


def retry_delay(attempts: int) -> dt.timedelta:
    """5 s, 10 s, 20 s, ... capped at an hour."""
    return dt.timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), MAX_RETRY_SECONDS))


class MailOutbox:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        mailer: Mailer,
        *,
        max_attempts: int,
        poll_interval: float = 2.0,
    ) -> None:
        self._uow = uow
        self._mailer = mailer
        self._max_attempts = max_attempts
        self._poll_interval = poll_interval
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def enqueue(self, uow: UnitOfWork, to: str, content: EmailContent) -> None:
        """Stage a message; it is queued when (and only if) ``uow`` commits."""
        uow.session.add(
            OutboxEmail(
                to_address=to,
                subject=content.subject,
                text_body=content.text,
                html_body=content.html,
                created_at=utcnow(),
                next_attempt_at=utcnow(),
                attempts=0,
            )
        )

    def notify(self) -> None:
        """Wake the dispatcher now rather than at its next poll."""
        self._wakeup.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="mail-outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.drain()
            except Exception:
                # The database may be briefly away; the next round tries again.
                logger.exception("mail outbox round failed")
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
            # cancellation that stops this loop at shutdown.
            with suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wakeup.wait()
            self._wakeup.clear()

    async def drain(self) -> int:
        """Deliver every message that is due now; returns how many were sent."""
        sent = 0
        while True:
            async with self._uow() as uow:
                due = await uow.outbox.due_ids(utcnow(), BATCH_SIZE)
            if not due:
                return sent
            for message_id in due:
                sent += await self._deliver(message_id)

    async def _deliver(self, message_id: uuid.UUID) -> int:
        now = utcnow()
        async with self._uow(write=True) as uow:
            if not await uow.outbox.claim(message_id, now, now + LEASE):
                return 0
            message = await uow.outbox.get(message_id)
            await uow.commit()
        if message is None:
            return 0
        content = EmailContent(message.subject, message.text_body, message.html_body)
        try:
            await self._mailer.send(message.to_address, content)
        except DeliveryError as exc:
            await self._failed(message_id, str(exc))
            return 0
        async with self._uow(write=True) as uow:
            stored = await uow.outbox.get(message_id)
            if stored is not None:
                stored.sent_at = utcnow()
                stored.attempts += 1
                stored.claimed_until = None
                # The link inside was for the recipient only; keep no copy of it.
                stored.text_body = stored.html_body = ""
                await uow.commit()
        return 1

    async def _failed(self, message_id: uuid.UUID, error: str) -> None:
        async with self._uow(write=True) as uow:
            stored = await uow.outbox.get(message_id)
            if stored is None:
                return
            stored.attempts += 1
            stored.claimed_until = None
            stored.last_error = error[:500]
            if stored.attempts >= self._max_attempts:
                stored.failed_at = utcnow()
                stored.text_body = stored.html_body = ""
                logger.error(
                    "email delivery failed for good",
                    message_id=str(message_id),
                    attempts=stored.attempts,
                    error=error,
                )
            else:
                stored.next_attempt_at = utcnow() + retry_delay(stored.attempts)
                logger.warning(
                    "email delivery failed; will retry",
                    message_id=str(message_id),
                    attempts=stored.attempts,
                    retry_at=stored.next_attempt_at.isoformat(),
                    error=error,
                )
            await uow.commit()
