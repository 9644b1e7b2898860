"""Background jobs: work a request starts but must not wait for.

Used where answering first is the point (a password-reset request answers 202 in
the same time whether or not the account exists, and does the work afterwards).
Jobs are tracked, their errors logged, and shutdown waits for them briefly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

logger = structlog.get_logger("accounts.jobs")


class BackgroundJobs:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, job: Coroutine[Any, Any, Any], *, name: str) -> None:
        task = asyncio.get_running_loop().create_task(job, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("background job failed", job=task.get_name(), exc_info=error)

    async def drain(self, grace_seconds: float = 10.0) -> None:
        """Wait for running jobs (tests, shutdown); cancel what is left after the grace."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in pending:
            task.cancel()
