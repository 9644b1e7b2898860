"""The email outbox under faults: a durable queue, drained with retries and backoff.

Sending never blocks or fails a request: the message is written to ``outbox_emails``
with its token, in one transaction, and a background dispatcher delivers it. A failed
delivery is logged and retried later; after the last attempt the message is kept as
failed and an error is logged. Nothing is lost silently, nothing is sent twice by two
dispatchers. The SMTP server here is a real one (aiosmtpd) on loopback, made to
refuse, to be absent, or to say nothing at all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, TypeVar

import httpx
import pytest
import structlog.testing
from aiosmtpd.controller import Controller
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import select, update

from accounts.bootstrap import Container, build
from accounts.http.app import create_app
from accounts.mail import EmailContent
from accounts.models import OneTimeToken, OutboxEmail
from accounts.services.outbox import MAX_RETRY_SECONDS, retry_delay
from accounts.settings import Settings
from tests.conftest import SmtpSink, free_port, make_settings
from tests.factories import account, register, unique_email

T = TypeVar("T")

VERIFY_REQUEST = "/api/v1/auth/verify-email/request"
# Handing a message to the queue is a couple of inserts. The SMTP timeout is longer
# than that bound, so a request that waited for a silent mail server would miss it.
QUICK_SECONDS = 1.5
SMTP_TIMEOUT_SECONDS = 3.0
EMAIL_FROM = "Accounts Test <accounts-test@example.org>"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 15.0, what: str = "condition"
) -> T:
    """Poll ``probe`` (bounded) until it returns something truthy, and return that."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within} s")
        await asyncio.sleep(0.05)


async def outbox_rows(container: Container) -> list[OutboxEmail]:
    async with container.uow() as uow:
        result = await uow.session.execute(select(OutboxEmail).order_by(OutboxEmail.id))
        return list(result.scalars())


async def tokens_of(container: Container, user_id: str) -> list[OneTimeToken]:
    async with container.uow() as uow:
        result = await uow.session.execute(
            select(OneTimeToken).where(OneTimeToken.user_id == uuid.UUID(user_id))
        )
        return list(result.scalars())


async def only_message(container: Container) -> OutboxEmail:
    rows = await outbox_rows(container)
    assert len(rows) == 1, f"expected one queued message, found {len(rows)}"
    return rows[0]


async def make_all_due(container: Container) -> None:
    """Move every pending message's next attempt into the past, with plain SQL."""
    async with container.database.write_engine.begin() as connection:
        await connection.execute(
            update(OutboxEmail)
            .where(OutboxEmail.sent_at.is_(None), OutboxEmail.failed_at.is_(None))
            .values(next_attempt_at=now() - dt.timedelta(seconds=1))
        )


async def first_attempt_done(container: Container) -> OutboxEmail | None:
    rows = await outbox_rows(container)
    return rows[0] if rows and rows[0].attempts >= 1 else None


def start_sink(port: int) -> tuple[SmtpSink, Controller]:
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    return sink, controller


@dataclass
class Outage:
    """A mail server that is down in one of several ways, and can come back."""

    kind: str
    port: int
    sink: SmtpSink
    _controllers: list[Controller] = field(default_factory=list)
    _silent: socket.socket | None = None

    def recover(self) -> None:
        if self.kind == "refusing":
            self.sink.refuse = False
            return
        if self._silent is not None:
            self._silent.close()
            self._silent = None
        self.sink, controller = start_sink(self.port)
        self._controllers.append(controller)

    def close(self) -> None:
        if self._silent is not None:
            self._silent.close()
        for controller in self._controllers:
            controller.stop()


@pytest.fixture(params=["refusing", "closed_port", "silent"])
def outage(request: pytest.FixtureRequest) -> Iterator[Outage]:
    """refusing: answers 451 to DATA; closed_port: nothing listens; silent: a socket
    that accepts connections and never says a word (the client must time out)."""
    kind: str = request.param
    if kind == "refusing":
        sink, controller = start_sink(free_port())
        sink.refuse = True
        down = Outage(kind, controller.port, sink, [controller])
    elif kind == "closed_port":
        down = Outage(kind, free_port(), SmtpSink())
    else:
        silent = socket.socket()
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        down = Outage(kind, silent.getsockname()[1], SmtpSink(), _silent=silent)
    try:
        yield down
    finally:
        down.close()


def smtp_settings(database_url: str, port: int, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_tls": "none",
        "smtp_timeout_seconds": SMTP_TIMEOUT_SECONDS,
        "public_url": "http://testserver",
        "email_from": EMAIL_FROM,
        **overrides,
    }
    return make_settings(database_url, **values)


@dataclass
class Running:
    """An app with its lifespan (and so its dispatcher) running, and a client of it."""

    app: FastAPI
    client: httpx.AsyncClient

    @property
    def container(self) -> Container:
        built: Container = self.app.state.container
        return built


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Running]:
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Running(application, http)


@pytest.fixture
async def down(database_url: str, outage: Outage) -> AsyncIterator[Running]:
    """The app, its SMTP server down in the ``outage`` way."""
    async with running(smtp_settings(database_url, outage.port)) as started:
        yield started


@pytest.fixture
async def refusing(
    database_url: str, smtp: tuple[SmtpSink, int]
) -> AsyncIterator[tuple[Running, SmtpSink]]:
    """The app, allowed two attempts per message, its SMTP server answering 451."""
    sink, port = smtp
    sink.refuse = True
    async with running(smtp_settings(database_url, port, mail_max_attempts=2)) as started:
        yield started, sink


async def request_verification(client: httpx.AsyncClient) -> tuple[str, float]:
    """Register and log in a user, ask for a verification email; (email, seconds taken)."""
    user = await account(client)
    started = time.monotonic()
    response = await client.post(VERIFY_REQUEST, headers=user.headers)
    elapsed = time.monotonic() - started
    assert response.status_code == 202, response.text
    return user.email, elapsed


async def fail_for_good(started: Running) -> OutboxEmail:
    """Queue a verification email and let both allowed attempts fail."""
    container = started.container
    await request_verification(started.client)
    await eventually(lambda: first_attempt_done(container), what="first attempt")
    await make_all_due(container)
    await container.outbox.drain()

    async def failed() -> OutboxEmail | None:
        row = await only_message(container)
        return row if row.failed_at is not None else None

    return await eventually(failed, what="message marked failed")


def events(captured: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in captured if entry.get("event") == name]


def token_from(message: EmailMessage, path: str) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    marker = f"http://testserver{path}?token="
    assert marker in text, text
    return str(text.split(marker, 1)[1].split()[0])


# --- a request never waits for, nor fails with, the mail server --------------------


async def test_verification_request_answers_202_quickly_while_smtp_is_down(
    down: Running, outage: Outage
) -> None:
    email, elapsed = await request_verification(down.client)

    assert elapsed < QUICK_SECONDS, f"the request took {elapsed:.2f} s: it waited for SMTP"
    row = await eventually(lambda: first_attempt_done(down.container), what="first attempt")
    assert row.to_address == email
    assert row.sent_at is None
    assert row.failed_at is None
    assert row.attempts >= 1
    assert row.next_attempt_at > now(), "a failed message must be retried later"
    assert row.last_error
    assert "/verify-email?token=" in row.text_body
    assert "/verify-email?token=" in row.html_body
    assert outage.sink.messages == []


async def test_message_queued_during_outage_is_delivered_once_when_smtp_is_back(
    down: Running, outage: Outage
) -> None:
    container = down.container
    email, _ = await request_verification(down.client)
    await eventually(lambda: first_attempt_done(container), what="first attempt")

    outage.recover()
    await make_all_due(container)
    await container.outbox.drain()
    received = await outage.sink.wait_for(1)

    async def sent() -> OutboxEmail | None:
        row = await only_message(container)
        return row if row.sent_at is not None else None

    row = await eventually(sent, what="message marked sent")
    assert row.failed_at is None
    assert row.attempts >= 2
    assert row.text_body == ""
    assert row.html_body == ""
    # Nothing is left to send: another round delivers nothing more.
    await make_all_due(container)
    assert await container.outbox.drain() == 0
    assert len(outage.sink.messages) == 1
    assert received[0]["To"] == email
    # The link that finally arrived is the live one.
    token = token_from(received[0], "/verify-email")
    confirmed = await down.client.post("/api/v1/auth/verify-email/confirm", json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email_verified"] is True


async def test_failed_attempt_is_logged_as_a_warning_with_the_retry_time(
    refusing: tuple[Running, SmtpSink],
) -> None:
    started, _ = refusing
    with structlog.testing.capture_logs() as captured:
        await request_verification(started.client)
        row = await eventually(lambda: first_attempt_done(started.container), what="first attempt")

    warnings = events(captured, "email delivery failed; will retry")
    assert len(warnings) == 1, captured
    warning = warnings[0]
    assert warning["log_level"] == "warning"
    assert warning["message_id"] == str(row.id)
    assert warning["attempts"] == 1
    assert "451" in warning["error"]
    assert dt.datetime.fromisoformat(warning["retry_at"]) == row.next_attempt_at
    assert "451" in (row.last_error or "")


async def test_message_is_marked_failed_and_kept_after_max_attempts(
    refusing: tuple[Running, SmtpSink],
) -> None:
    started, sink = refusing
    container = started.container

    row = await fail_for_good(started)

    assert row.attempts == 2
    assert row.sent_at is None
    assert row.failed_at is not None
    assert "451" in (row.last_error or "")
    # Failed is final: the server accepting again does not revive it.
    sink.refuse = False
    await make_all_due(container)
    assert await container.outbox.drain() == 0
    kept = await only_message(container)
    assert kept.id == row.id
    assert kept.attempts == 2
    assert kept.failed_at == row.failed_at
    assert sink.messages == []


async def test_giving_up_on_a_message_logs_an_error(
    refusing: tuple[Running, SmtpSink],
) -> None:
    started, _ = refusing
    with structlog.testing.capture_logs() as captured:
        row = await fail_for_good(started)

    errors = events(captured, "email delivery failed for good")
    assert len(errors) == 1, captured
    error = errors[0]
    assert error["log_level"] == "error"
    assert error["message_id"] == str(row.id)
    assert error["attempts"] == 2
    assert "451" in error["error"]


# --- the message is written with its token, in one transaction ----------------------


async def test_verification_token_and_its_message_are_stored_together(
    client: httpx.AsyncClient, container: Container
) -> None:
    user = await account(client)

    response = await client.post(VERIFY_REQUEST, headers=user.headers)

    assert response.status_code == 202, response.text
    tokens = await tokens_of(container, user.id)
    assert [token.purpose for token in tokens] == ["verify_email"]
    assert [row.to_address for row in await outbox_rows(container)] == [user.email]


@pytest.mark.parametrize("ending", ["left_without_commit", "failed_after_enqueue"])
async def test_unit_of_work_not_committed_leaves_neither_token_nor_message(
    client: httpx.AsyncClient, container: Container, ending: str
) -> None:
    user = await register(client)
    user_id = uuid.UUID(user["id"])
    content = EmailContent("Confirm your email address", "text", "<p>html</p>")

    def token() -> OneTimeToken:
        return OneTimeToken(
            user_id=user_id,
            purpose="verify_email",
            token_hash=uuid.uuid4().hex,
            email_key=user["email"],
            created_at=now(),
            expires_at=now() + dt.timedelta(hours=1),
        )

    if ending == "left_without_commit":
        async with container.uow(write=True) as uow:
            uow.one_time_tokens.stage(token())
            container.outbox.enqueue(uow, user["email"], content)
    else:

        async def fail_after_enqueue() -> None:
            async with container.uow(write=True) as uow:
                uow.one_time_tokens.stage(token())
                container.outbox.enqueue(uow, user["email"], content)
                raise RuntimeError("the use case failed after enqueue")

        with pytest.raises(RuntimeError, match="after enqueue"):
            await fail_after_enqueue()

    assert await outbox_rows(container) == []
    assert await tokens_of(container, user["id"]) == []
    # The same steps, committed, store both: the empty tables above are the rollback.
    async with container.uow(write=True) as uow:
        uow.one_time_tokens.stage(token())
        container.outbox.enqueue(uow, user["email"], content)
        await uow.commit()
    assert [row.to_address for row in await outbox_rows(container)] == [user["email"]]
    assert len(await tokens_of(container, user["id"])) == 1


# --- several dispatchers: the lease --------------------------------------------------


@pytest.fixture
async def dispatchers(
    database_url: str, smtp: tuple[SmtpSink, int]
) -> AsyncIterator[tuple[Container, Container]]:
    """Two containers on one database, as two instances of the service would be
    (each with its own engine and outbox; no background loop, the test drains)."""
    settings = smtp_settings(database_url, smtp[1])
    first, second = build(settings), build(settings)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def enqueue_many(container: Container, count: int) -> list[str]:
    addresses = [unique_email("queued") for _ in range(count)]
    async with container.uow(write=True) as uow:
        for address in addresses:
            content = EmailContent("Subject", f"text for {address}", f"<p>{address}</p>")
            container.outbox.enqueue(uow, address, content)
        await uow.commit()
    return addresses


async def test_two_dispatchers_draining_at_once_deliver_each_message_once(
    dispatchers: tuple[Container, Container], smtp: tuple[SmtpSink, int]
) -> None:
    first, second = dispatchers
    sink, _ = smtp
    addresses = await enqueue_many(first, 12)

    sent = await asyncio.gather(first.outbox.drain(), second.outbox.drain())

    assert sum(sent) == len(addresses)
    assert sorted(message["To"] for message in sink.messages) == sorted(addresses)
    rows = await outbox_rows(first)
    assert all(row.sent_at is not None and row.attempts == 1 for row in rows)
    assert await asyncio.gather(first.outbox.drain(), second.outbox.drain()) == [0, 0]
    assert len(sink.messages) == len(addresses)


async def test_message_leased_by_another_dispatcher_waits_for_the_lease_to_lapse(
    dispatchers: tuple[Container, Container], smtp: tuple[SmtpSink, int]
) -> None:
    first, _ = dispatchers
    sink, _ = smtp
    [address] = await enqueue_many(first, 1)

    async def lease_until(until: dt.datetime) -> None:
        async with first.database.write_engine.begin() as connection:
            await connection.execute(update(OutboxEmail).values(claimed_until=until))

    # Another dispatcher holds the message (it may be sending it right now).
    await lease_until(now() + dt.timedelta(minutes=1))
    assert await first.outbox.drain() == 0
    assert sink.messages == []
    # That dispatcher died: once its lease lapses, the message is sent, not lost.
    await lease_until(now() - dt.timedelta(seconds=1))
    assert await first.outbox.drain() == 1
    assert [message["To"] for message in sink.messages] == [address]


# --- backoff, and the message itself -------------------------------------------------


def test_retry_delay_grows_exponentially_and_is_capped() -> None:
    delays = [retry_delay(attempts).total_seconds() for attempts in range(1, 51)]

    assert delays[:5] == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert all(later >= earlier for earlier, later in itertools.pairwise(delays))
    assert max(delays) == MAX_RETRY_SECONDS == 3600.0
    assert delays[-1] == 3600.0


async def test_email_is_multipart_alternative_from_the_configured_sender(
    database_url: str, smtp: tuple[SmtpSink, int]
) -> None:
    sink, port = smtp
    async with running(smtp_settings(database_url, port)) as started:
        email, _ = await request_verification(started.client)
        [message] = await sink.wait_for(1)

    assert message["From"] == EMAIL_FROM
    assert message["To"] == email
    assert message["Subject"] == "Confirm your email address"
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    token = token_from(message, "/verify-email")
    assert all(token in part.get_content() for part in parts)
