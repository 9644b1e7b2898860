"""A fuzzing target: the app on a SQLite file of its own, with a superuser to act as.

Schemathesis' pytest integration wants its schema at import time (it builds the
coverage-phase cases, authentication included, while collecting), and calls the
app in-process over ASGI from an event-loop thread of its own, where it also runs
the app's lifespan. So the target is made when the test module is imported: a
migrated SQLite file in a temporary directory, with a superuser created through the
service layer on a loop of its own; requests then log that superuser in over the
app itself.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import sqlite3
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
from schemathesis import AuthContext, Case

from accounts.bootstrap import build
from accounts.settings import Settings
from tests.conftest import DATA_TABLES, make_settings
from tests.factories import PASSWORD
from tests.fuzz._checks import MAX_REQUEST_BODY_BYTES

ADMIN_EMAIL = "fuzz-admin@example.com"
# The stateful runs: scenarios of a few linked operations each, as many as CI's time allows.
STATEFUL_EXAMPLES = 25
STATEFUL_STEPS = 6


class ReloggingBearerAuth:
    """Schemathesis auth that keeps a bearer token while ``works`` accepts it and calls
    ``login`` for a new one once it does not (a fuzzed logout ends the session, a fuzzed
    email change moves the login, a stateful scenario starts from a reset database).
    Each fuzz module says how to check and how to log in over its own API."""

    def __init__(self) -> None:
        self.token: str | None = None

    def get(self, case: Case, context: AuthContext) -> str:
        if self.token is None or not self.works(self.token):
            self.token = self.login()
        return self.token

    def set(self, case: Case, data: str, context: AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    def works(self, token: str) -> bool:
        raise NotImplementedError

    def login(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class FuzzTarget:
    settings: Settings
    directory: Path
    admin_id: uuid.UUID
    _admin_row: tuple[object, ...]
    admin_password: str = PASSWORD

    @property
    def path(self) -> Path:
        return self.directory / "accounts.db"

    def admin_email(self) -> str:
        """The superuser's current email (a fuzzed PATCH /users/me may have changed it)."""
        with sqlite3.connect(self.path) as connection:
            row = connection.execute(
                "SELECT email FROM users WHERE id = ?", (self.admin_id.hex,)
            ).fetchone()
        return str(row[0]) if row else ADMIN_EMAIL

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def reset(self) -> None:
        """Back to the state just after ``make_target``: only the superuser, as created.

        For the stateful phase: each scenario then starts from the same server state,
        so the same choices meet the same answers (Hypothesis rejects a strategy whose
        draws depend on state left behind by an earlier scenario as flaky).
        """
        with sqlite3.connect(self.path) as connection:
            connection.execute("PRAGMA busy_timeout = 30000")
            for table in DATA_TABLES:
                connection.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
            placeholders = ", ".join("?" * len(self._admin_row))
            connection.execute(
                f"INSERT INTO users VALUES ({placeholders})",  # noqa: S608 - no input
                self._admin_row,
            )


async def _create_admin(settings: Settings) -> uuid.UUID:
    container = build(settings)
    try:
        await container.start()
        user = await container.users.create(ADMIN_EMAIL, PASSWORD, "Fuzz Admin", is_superuser=True)
    finally:
        await container.close()
    return user.id


def make_target(prefix: str) -> FuzzTarget:
    """A migrated SQLite file in a new temporary directory, with a superuser; rate limits off."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    settings = make_settings(
        f"sqlite+aiosqlite:///{directory / 'accounts.db'}",
        rate_limits="off",
        # Set, not left to ACCOUNTS_MAX_REQUEST_BODY_BYTES: the 413 check holds to it.
        max_request_body_bytes=MAX_REQUEST_BODY_BYTES,
    )
    # On a loop of its own, in a thread: the caller may be inside a running loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        admin_id = pool.submit(asyncio.run, _create_admin(settings)).result()
    with sqlite3.connect(directory / "accounts.db") as connection:
        (admin_row,) = connection.execute(
            "SELECT * FROM users WHERE id = ?", (admin_id.hex,)
        ).fetchall()
    target = FuzzTarget(
        settings=settings, directory=directory, admin_id=admin_id, _admin_row=tuple(admin_row)
    )
    # Also when the module's tests are deselected and its fixtures never run.
    atexit.register(target.remove)
    return target


def run_scenarios_from_the_same_start(schema: Any, target: FuzzTarget) -> None:
    """Run schemathesis' stateful phase against ``target``: chains of calls over the
    links it infers (a registered user read, patched and deleted by the id its
    creation returned...).

    Each scenario starts from a reset database (only the superuser), so that the same
    choices meet the same answers: which links can be followed depends on earlier
    answers, and Hypothesis rejects draws that depend on state left by an earlier
    scenario as a flaky strategy. Generation only, for the same reason: shrinking
    replays steps against whatever the app answers now.
    """

    class FromTheSameStart(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            target.reset()

    machine: Any = FromTheSameStart
    machine.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            database=None,
            phases=[hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
