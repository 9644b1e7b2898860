"""Helpers for the account-lifecycle tests: reading the emails the SMTP sink received,
following their links, filling in the pages' forms, and looking at rows directly.

Emails are read the way a mail client shows them (the text/plain and text/html
parts of a multipart/alternative message); links are followed with the same HTTP
client, exactly as a user's browser would, and forms are submitted with the fields
the page itself holds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from fastapi import FastAPI
from sqlalchemy import text, update

from accounts.bootstrap import Container
from accounts.models import OneTimeToken
from tests.conftest import SmtpSink
from tests.factories import bearer

PUBLIC_URL = "http://testserver"
VERIFY_PATH = "/verify-email"
RESET_PATH = "/reset-password"
VERIFY_REQUEST = "/api/v1/auth/verify-email/request"
VERIFY_CONFIRM = "/api/v1/auth/verify-email/confirm"
RESET_REQUEST = "/api/v1/auth/password-reset/request"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"
SESSIONS = "/api/v1/auth/sessions"
AUDIT = "/api/v1/audit-events"
ME = "/api/v1/users/me"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
PROBLEM_JSON = "application/problem+json"
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")
# URL-safe base64 without padding: what secrets.token_urlsafe gives and the contract asks.
TOKEN_CHARS = r"[A-Za-z0-9_-]+"


def container_of(app: FastAPI) -> Container:
    built: Container = app.state.container
    return built


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def timestamp(value: str) -> dt.datetime:
    """Parse an RFC 3339 UTC timestamp, failing on any other form."""
    assert RFC3339_UTC.match(value), value
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == dt.timedelta(0)
    return parsed


def session_id_of(access_token: str) -> str:
    """The ``sid`` claim of an access token (read, not verified: the server verifies)."""
    claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    sid: str = claims["sid"]
    return sid


# --- emails ----------------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def hrefs_in(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.hrefs


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "no text/plain part"
    assert part.get_content_type() == "text/plain"
    content: str = part.get_content()
    return content


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "no text/html part"
    assert part.get_content_type() == "text/html"
    content: str = part.get_content()
    return content


def link_in(message: EmailMessage, path: str) -> str:
    """The one link to ``{PUBLIC_URL}{path}?token=…`` in the text part, checked to be
    the same link the HTML part's anchor points to."""
    pattern = re.compile(re.escape(f"{PUBLIC_URL}{path}?token=") + TOKEN_CHARS)
    found = pattern.findall(text_part(message))
    assert len(found) == 1, f"expected one {path} link in the text part, got {found}"
    link: str = found[0]
    assert link in hrefs_in(html_part(message)), "the HTML part links elsewhere"
    return link


def token_of(link: str) -> str:
    query = parse_qs(urlsplit(link).query)
    assert list(query) == ["token"], link
    (token,) = query["token"]
    assert re.fullmatch(TOKEN_CHARS, token), token
    return token


async def next_email(sink: SmtpSink, already: int) -> EmailMessage:
    """The first message after the ``already`` ones the sink had (bounded wait)."""
    messages = await sink.wait_for(already + 1)
    return messages[already]


async def no_more_email(sink: SmtpSink, count: int, within: float = 0.5) -> None:
    """Poll for ``within`` seconds, failing as soon as more than ``count`` messages arrive."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        assert len(sink.messages) == count, [m["Subject"] for m in sink.messages]
        await asyncio.sleep(0.05)
    assert len(sink.messages) == count


@dataclass
class Mail:
    message: EmailMessage
    link: str
    token: str


async def verification_mail(client: httpx.AsyncClient, sink: SmtpSink, access_token: str) -> Mail:
    """Ask for a verification email as the holder of ``access_token``; return it."""
    before = len(sink.messages)
    response = await client.post(VERIFY_REQUEST, headers=bearer(access_token))
    assert response.status_code == 202, response.text
    message = await next_email(sink, before)
    link = link_in(message, VERIFY_PATH)
    return Mail(message, link, token_of(link))


async def reset_mail(client: httpx.AsyncClient, app: FastAPI, sink: SmtpSink, email: str) -> Mail:
    """Ask for a password-reset email for ``email``; return it."""
    before = len(sink.messages)
    response = await client.post(RESET_REQUEST, json={"email": email})
    assert response.status_code == 202, response.text
    await container_of(app).jobs.drain()
    message = await next_email(sink, before)
    link = link_in(message, RESET_PATH)
    return Mail(message, link, token_of(link))


# --- pages -----------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    hidden: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(
                Form(action=values.get("action", ""), method=values.get("method", ""))
            )
        elif tag == "input" and self.forms:
            form = self.forms[-1]
            form.inputs.append(values.get("name", ""))
            if values.get("type") == "hidden":
                form.hidden[values.get("name", "")] = values.get("value", "")


def the_form(html: str) -> Form:
    parser = _Forms()
    parser.feed(html)
    assert len(parser.forms) == 1, html
    return parser.forms[0]


def assert_page(response: httpx.Response, status: int) -> None:
    """An HTML page with the headers that keep the token in its URL private."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


async def submit(client: httpx.AsyncClient, form: Form, **fields: str) -> httpx.Response:
    """Submit a page's form as a browser does: its hidden fields plus what was typed."""
    assert form.method.lower() == "post"
    return await client.post(form.action, data={**form.hidden, **fields})


# --- rows ------------------------------------------------------------------------------


async def rows(app: FastAPI, sql: str, **params: Any) -> Sequence[Any]:
    engine = container_of(app).database.write_engine
    async with engine.connect() as connection:
        result = await connection.execute(text(sql), params)
        return result.mappings().all()


async def execute_sql(app: FastAPI, *statements: str) -> None:
    engine = container_of(app).database.write_engine
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))


async def expire_token(app: FastAPI, token: str) -> None:
    """Move a one-time token's expiry into the past, as if its lifetime had run out."""
    engine = container_of(app).database.write_engine
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    async with engine.begin() as connection:
        result = await connection.execute(
            update(OneTimeToken)
            .where(OneTimeToken.token_hash == sha256_hex(token))
            .values(expires_at=past)
        )
        assert result.rowcount == 1


@asynccontextmanager
async def failing_inserts(app: FastAPI, table: str) -> AsyncIterator[None]:
    """Make every INSERT into ``table`` fail (a trigger), for as long as the block runs."""
    database = container_of(app).database
    trigger = f"test_fail_{table}"
    if database.is_sqlite:
        create: tuple[str, ...] = (
            f"CREATE TRIGGER {trigger} BEFORE INSERT ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
        )
        drop: tuple[str, ...] = (f"DROP TRIGGER IF EXISTS {trigger}",)
    else:
        create = (
            f"CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by test'; END $$",
            f"CREATE TRIGGER {trigger} BEFORE INSERT ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {trigger}()",
        )
        drop = (
            f"DROP TRIGGER IF EXISTS {trigger} ON {table}",
            f"DROP FUNCTION IF EXISTS {trigger}()",
        )
    await execute_sql(app, *create)
    try:
        yield
    finally:
        await execute_sql(app, *drop)


async def poll_rows(
    app: FastAPI,
    sql: str,
    *,
    until: Callable[[Sequence[Any]], bool],
    within: float = 10.0,
    **params: Any,
) -> Sequence[Any]:
    """Poll a query (bounded) until its rows satisfy ``until``; return them."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await rows(app, sql, **params)
        if found and until(found):
            return found
        assert asyncio.get_running_loop().time() < deadline, f"never true: {sql} -> {found}"
        await asyncio.sleep(0.05)


async def wait_until_sent(app: FastAPI, to_address: str, within: float = 10.0) -> Any:
    """Poll (bounded) until the outbox marks the message to ``to_address`` sent."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await rows(
            app,
            "SELECT * FROM outbox_emails WHERE to_address = :to AND sent_at IS NOT NULL",
            to=to_address,
        )
        if found:
            return found[0]
        assert asyncio.get_running_loop().time() < deadline, "the outbox never marked it sent"
        await asyncio.sleep(0.05)


# --- audit -----------------------------------------------------------------------------


async def audit_events(
    client: httpx.AsyncClient, token: str, **params: str | int
) -> list[dict[str, Any]]:
    """Every audit event matching ``params``, newest first, following the cursor."""
    items: list[dict[str, Any]] = []
    query: dict[str, str | int] = {"limit": 100, **params}
    while True:
        response = await client.get(AUDIT, params=query, headers=bearer(token))
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        if body["next_cursor"] is None:
            return items
        query["cursor"] = body["next_cursor"]
