"""The unit of work: one database transaction, committed only on purpose.

A service opens one per use case::

    async with self._uow(write=True) as uow:
        user = await uow.users.get(user_id)
        ...
        await uow.commit()

Leaving the block without ``commit()`` rolls everything back. Errors that mean the
database is unreachable or overloaded leave as ``ServiceUnavailable`` so that the
edges answer 503 instead of a 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType

from accounts.db.engine import Database, new_session
from accounts.db.errors import is_unavailable
from accounts.db.repositories.audit_events import AuditEventRepository
from accounts.db.repositories.auth_sessions import AuthSessionRepository
from accounts.db.repositories.one_time_tokens import OneTimeTokenRepository
from accounts.db.repositories.outbox import OutboxRepository
from accounts.db.repositories.refresh_tokens import RefreshTokenRepository
from accounts.db.repositories.signing_keys import SigningKeyRepository
from accounts.db.repositories.users import UserRepository
from accounts.domain.errors import ServiceUnavailable

UnitOfWorkFactory = Callable[..., "UnitOfWork"]


class UnitOfWork:
    def __init__(self, database: Database, *, write: bool = False) -> None:
        self._database = database
        self._write = write

    async def __aenter__(self) -> UnitOfWork:
        self.session = new_session(self._database, write=self._write)
        self.users = UserRepository(self.session)
        self.auth_sessions = AuthSessionRepository(self.session)
        self.refresh_tokens = RefreshTokenRepository(self.session)
        self.signing_keys = SigningKeyRepository(self.session)
        self.one_time_tokens = OneTimeTokenRepository(self.session)
        self.outbox = OutboxRepository(self.session)
        self.audit = AuditEventRepository(self.session)
        # Taken last: nothing above can fail and leave it held.
        self._writer_lock = self._database.writer_lock if self._write else None
        if self._writer_lock is not None:
            await self._take_writer_lock(self._writer_lock)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._close(exc)
        finally:
            if self._writer_lock is not None:
                self._database.writer = None
                self._writer_lock.release()

    async def _take_writer_lock(self, lock: asyncio.Lock) -> None:
        # SQLite only (db/engine.py): writers in this process queue here, in order,
        # instead of in SQLite's sleeping busy handler.
        task = asyncio.current_task()
        if task is not None and self._database.writer is task:
            raise RuntimeError("a write unit of work is already open in this task")
        try:
            async with asyncio.timeout(self._database.writer_lock_timeout):
                await lock.acquire()
        except TimeoutError:
            raise ServiceUnavailable() from None
        self._database.writer = task

    async def _close(self, exc: BaseException | None) -> None:
        try:
            # close() rolls back whatever was not committed and releases the
            # connection; unlike rollback() it leaves loaded objects readable. With no
            # transaction (committed, or the database never touched) there is neither,
            # and closing would only cost a greenlet, which under load costs the event
            # loop a TLB shootdown (docs/performance.md); detaching the objects, all
            # that is left of close(), needs no I/O.
            if self.session.in_transaction():
                await self.session.close()
            else:
                self.session.expunge_all()
        except Exception as close_error:
            # With an error already on its way, that one says more; otherwise a
            # failed close is an outage like any other.
            if exc is None:
                if is_unavailable(close_error):
                    raise ServiceUnavailable() from close_error
                raise
        if exc is not None and is_unavailable(exc):
            raise ServiceUnavailable() from exc

    async def commit(self) -> None:
        try:
            await self.session.commit()
        except Exception as exc:
            if is_unavailable(exc):
                raise ServiceUnavailable() from exc
            raise


def unit_of_work_factory(database: Database) -> UnitOfWorkFactory:
    def make(*, write: bool = False) -> UnitOfWork:
        return UnitOfWork(database, write=write)

    return make
