"""The bad-input catalogue: every write path against every class of bad input.

Each row of the table below is one request. Every row must get a 4xx
``application/problem+json`` answer (never a 5xx), and the database must be exactly
as it was, on SQLite and on PostgreSQL. Four kinds of row are answered otherwise
on purpose, and say so in the table:

* SQL- and template-injection strings that are valid values (a name, an address
  whose local part may hold braces and dollars, a password) are stored verbatim:
  the row then asserts the exact change (that row, its audit event, nothing else)
  and that the stored value is the literal string, read back from the database.
* Passwords are "any Unicode": a NUL in a new password is stored (as its hash, and
  exactly that password then logs in), one in a password being checked is just a
  wrong password. A lone surrogate is not text, and is refused everywhere.
* Failed logins record ``user.login_failed``: rows on the login paths allow exactly
  that audit event and nothing else.
* ``/auth/token`` is an OAuth2 token endpoint, which must ignore parameters it does
  not know (RFC 6749 §3.2): extra form fields there change nothing, not even when
  the credentials are right.

Rows are grouped by path and class; a group runs every row and reports all that
failed. The same characters are also sent through GraphQL's string arguments.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from sqlalchemy import select

from accounts.bootstrap import Container
from accounts.domain.pagination import Cursor
from accounts.models import Base
from accounts.settings import Settings
from tests.conftest import make_settings
from tests.factories import PASSWORD, Account, account, bearer, superuser, unique_email

PROBLEM_KEYS = {"type", "title", "status", "detail", "request_id"}
NEW_PASSWORD = "another long passphrase"
FAKE_TOKEN = "x" * 43
SQL_INJECTIONS = ["' OR 1=1 --", '"; DROP TABLE users; --']
TEMPLATE_INJECTIONS = ["{{7*7}}", "${7*7}"]
INJECTIONS = SQL_INJECTIONS + TEMPLATE_INJECTIONS
OVERSIZED = 70 * 1024  # over the default 64 KiB body limit
LOGIN_FAILED = "user.login_failed"
UNSUPPORTED = {415, 422}  # a body in a media type the path does not take


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Rate limits are not what this catalogue is about: keep them from answering first.
    return make_settings(database_url, rate_limits="off")


# --- The world each row runs in ---------------------------------------------------------


@dataclass
class World:
    client: httpx.AsyncClient
    container: Container
    admin: Account
    user: Account

    def headers(self, auth: str) -> dict[str, str]:
        if auth == "user":
            return self.user.headers
        if auth == "admin":
            return self.admin.headers
        return {}


@pytest.fixture
async def world(client: httpx.AsyncClient, container: Container) -> World:
    admin = await superuser(client, container)
    user = await account(client)
    return World(client=client, container=container, admin=admin, user=user)


# --- The write paths --------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    method: str
    path: str
    auth: str  # "none", "user" or "admin"
    base: Callable[[World], dict[str, str]]
    strings: tuple[str, ...]
    form: bool = False
    login: bool = False  # a failure may record user.login_failed
    partial: bool = False  # PATCH: a body of the one field under test is a whole request

    def url(self, world: World) -> str:
        return self.path.format(user_id=world.user.id)


TARGETS = [
    Target(
        "register",
        "POST",
        "/api/v1/users",
        "none",
        lambda w: {"email": unique_email("bad"), "password": PASSWORD, "name": "Bad Input"},
        ("email", "password", "name"),
    ),
    Target(
        "update-me",
        "PATCH",
        "/api/v1/users/me",
        "user",
        lambda w: {"name": "Renamed", "email": unique_email("renamed")},
        ("name", "email"),
        partial=True,
    ),
    Target(
        "update-user",
        "PATCH",
        "/api/v1/users/{user_id}",
        "user",
        lambda w: {"name": "Renamed", "email": unique_email("renamed")},
        ("name", "email"),
        partial=True,
    ),
    Target(
        "change-password",
        "POST",
        "/api/v1/users/me/password",
        "user",
        lambda w: {"current_password": w.user.password, "new_password": NEW_PASSWORD},
        ("current_password", "new_password"),
    ),
    Target(
        "login",
        "POST",
        "/api/v1/auth/login",
        "none",
        lambda w: {"email": w.user.email, "password": "not the password"},
        ("email", "password"),
        login=True,
    ),
    Target(
        "token",
        "POST",
        "/api/v1/auth/token",
        "none",
        lambda w: {"username": w.user.email, "password": "not the password"},
        ("username", "password"),
        form=True,
        login=True,
    ),
    Target(
        "refresh",
        "POST",
        "/api/v1/auth/refresh",
        "none",
        lambda w: {"refresh_token": w.user.refresh_token},
        ("refresh_token",),
    ),
    Target(
        # With the bearer token too: a body that does not parse must not fall back to
        # ending the bearer's session.
        "logout",
        "POST",
        "/api/v1/auth/logout",
        "user",
        lambda w: {"refresh_token": w.user.refresh_token},
        ("refresh_token",),
    ),
    Target(
        "verify-email-confirm",
        "POST",
        "/api/v1/auth/verify-email/confirm",
        "none",
        lambda w: {"token": FAKE_TOKEN},
        ("token",),
    ),
    Target(
        "password-reset-request",
        "POST",
        "/api/v1/auth/password-reset/request",
        "none",
        lambda w: {"email": w.user.email},
        ("email",),
    ),
    Target(
        "password-reset-confirm",
        "POST",
        "/api/v1/auth/password-reset/confirm",
        "none",
        lambda w: {"token": FAKE_TOKEN, "new_password": NEW_PASSWORD},
        ("token", "new_password"),
    ),
]
BY_NAME = {target.name: target for target in TARGETS}


# --- Requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A request body exactly as sent."""

    content: bytes
    content_type: str | None


def encode(target: Target, body: dict[str, Any]) -> Raw:
    if target.form:
        # surrogatepass: a lone surrogate travels as its (invalid) UTF-8 bytes.
        return Raw(
            urlencode(body, encoding="utf-8", errors="surrogatepass").encode("ascii"),
            "application/x-www-form-urlencoded",
        )
    # ensure_ascii: NUL and lone surrogates travel as \\u escapes, as a client sends them.
    return Raw(json.dumps(body).encode("ascii"), "application/json")


async def send(world: World, target: Target, raw: Raw) -> httpx.Response:
    headers = dict(world.headers(target.auth))
    if raw.content_type is not None:
        headers["Content-Type"] = raw.content_type
    response = await world.client.request(
        target.method, target.url(world), content=raw.content, headers=headers
    )
    # A password-reset request answers first and works afterwards: let that finish.
    await world.container.jobs.drain(grace_seconds=10)
    return response


def assert_problem(response: httpx.Response, statuses: set[int]) -> dict[str, Any]:
    assert response.status_code < 500, f"{response.status_code} {response.text}"
    assert response.status_code in statuses, (
        f"{response.status_code} (expected {sorted(statuses)}) {response.text}"
    )
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_KEYS, body
    assert body["status"] == response.status_code, body
    assert body["request_id"] == response.headers["x-request-id"]
    return body


class Rows:
    """Runs every row of a group and reports all the rows that failed, not only the first."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    @contextmanager
    def row(self, label: str) -> Iterator[None]:
        try:
            yield
        except AssertionError as exc:
            self.failures.append(f"- {label}: {exc}".splitlines()[0][:600])

    def check(self) -> None:
        assert not self.failures, f"{len(self.failures)} rows failed:\n" + "\n".join(self.failures)


# --- The database, before and after -------------------------------------------------------

Snapshot = dict[str, dict[tuple[Any, ...], dict[str, Any]]]


async def snapshot(container: Container) -> Snapshot:
    """Every row of every table, keyed by primary key, read on a connection of its own."""
    tables: Snapshot = {}
    async with container.database.read_engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            key = [column.name for column in table.primary_key.columns]
            rows = (await connection.execute(select(table))).mappings().all()
            tables[table.name] = {tuple(row[name] for name in key): dict(row) for row in rows}
    return tables


@dataclass
class Diff:
    added: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    removed: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    changed: dict[str, dict[tuple[Any, ...], dict[str, tuple[Any, Any]]]] = field(
        default_factory=dict
    )

    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff(before: Snapshot, after: Snapshot) -> Diff:
    result = Diff()
    for table, rows in after.items():
        old = before.get(table, {})
        added = [row for key, row in rows.items() if key not in old]
        removed = [key for key in old if key not in rows]
        changed = {
            key: {
                column: (old[key][column], value)
                for column, value in row.items()
                if old[key][column] != value
            }
            for key, row in rows.items()
            if key in old and old[key] != row
        }
        if added:
            result.added[table] = added
        if removed:
            result.removed[table] = removed
        if changed:
            result.changed[table] = changed
    return result


def without_login_failures(changes: Diff) -> Diff:
    events = [row for row in changes.added.get("audit_events", []) if row["type"] != LOGIN_FAILED]
    added = {table: rows for table, rows in changes.added.items() if table != "audit_events"}
    if events:
        added["audit_events"] = events
    return Diff(added=added, removed=changes.removed, changed=changes.changed)


def assert_unchanged(target: Target, before: Snapshot, after: Snapshot) -> None:
    changes = diff(before, after)
    if target.login:
        changes = without_login_failures(changes)
    assert changes.is_empty(), f"the database changed: {changes}"


# --- 1. Bodies that are not what the path takes --------------------------------------------


def oversized(target: Target, world: World) -> Raw:
    body = target.base(world)
    body[target.strings[0]] = "x" * OVERSIZED
    return encode(target, body)


def body_cases(target: Target, world: World) -> Iterator[tuple[str, Raw, set[int]]]:
    """(label, body, the statuses the contract allows)."""
    good = encode(target, target.base(world))
    yield "oversized", oversized(target, world), {413}
    yield "invalid UTF-8", Raw(b'{"x": "\xff\xfe"}', good.content_type), {400, 422}
    yield "plain text", Raw(good.content, "text/plain"), UNSUPPORTED
    yield (
        "multipart without fields",
        Raw(b"--b--\r\n", "multipart/form-data; boundary=b"),
        UNSUPPORTED,
    )
    if target.form:
        yield (
            "JSON to a form",
            Raw(json.dumps(target.base(world)).encode(), "application/json"),
            UNSUPPORTED,
        )
        return
    yield "invalid JSON", Raw(b'{"email": ', "application/json"), {400, 422}
    yield (
        "a form body labelled JSON",
        Raw(urlencode(target.base(world)).encode(), good.content_type),
        {400, 422},
    )
    yield "form content type", Raw(good.content, "application/x-www-form-urlencoded"), UNSUPPORTED
    yield "a JSON array", Raw(b"[]", "application/json"), {422}
    yield "a JSON string", Raw(b'"body"', "application/json"), {422}
    yield "no content type", Raw(b"not json at all", None), {400, 415, 422}
    if target.name != "logout":  # no body at all is logout's bearer-token form
        yield "empty JSON", Raw(b"", "application/json"), {400, 422}
        yield "JSON null", Raw(b"null", "application/json"), {422}
    yield (
        "an empty object",
        Raw(b"{}", "application/json"),
        ({422} if target.name not in {"update-me", "update-user"} else set()),
    )


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
async def test_bodies_the_path_does_not_take_are_refused(world: World, target: Target) -> None:
    rows = Rows()
    for label, raw, statuses in body_cases(target, world):
        if not statuses:
            continue  # PATCH {} is a valid empty update
        with rows.row(f"{target.name} / {label}"):
            before = await snapshot(world.container)
            response = await send(world, target, raw)
            assert_problem(response, statuses)
            assert_unchanged(target, before, await snapshot(world.container))
    rows.check()


# --- 2. NUL bytes and lone surrogates in every string field -----------------------------------

BAD_CHARACTERS = {"NUL": "\x00", "lone surrogate": "\ud800"}
# Passwords are "any Unicode" (NIST SP 800-63B): a control character is part of the
# secret, not an error, so a NUL in a password to be set is stored (as its hash) and
# one in a password being checked is simply a wrong password. A lone surrogate is not
# text at all, and is refused everywhere.
PASSWORD_FIELDS = {"password", "new_password", "current_password"}


def with_character(value: str, char: str) -> str:
    middle = max(1, len(value) // 2)
    return value[:middle] + char + value[middle:]


def character_statuses(target: Target, field_name: str, kind: str) -> set[int]:
    if field_name in PASSWORD_FIELDS and kind == "NUL":
        return {
            "register": {201},
            "change-password": {204} if field_name == "new_password" else {400},
            "password-reset-confirm": {400},  # the token is fake
        }.get(target.name, {401})
    if target.name == "password-reset-request":
        # The one path that answers 202 to any address (no enumeration) must still
        # refuse what cannot be an address at all.
        return {422}
    return {400, 401, 422}


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
async def test_nul_bytes_and_lone_surrogates_in_string_fields_are_refused(
    world: World, target: Target
) -> None:
    rows = Rows()
    for field_name in target.strings:
        for kind, char in BAD_CHARACTERS.items():
            label = f"{target.name} / {kind} in {field_name}"
            body = target.base(world)
            if target.partial:
                body = {field_name: body[field_name]}
            body[field_name] = with_character(body[field_name], char)
            statuses = character_statuses(target, field_name, kind)
            with rows.row(label):
                before = await snapshot(world.container)
                response = await send(world, target, encode(target, body))
                if statuses & {201, 204}:
                    assert response.status_code in statuses, response.text
                    await assert_password_stored_verbatim(world, target, body, field_name, before)
                    continue
                assert_problem(response, statuses)
                assert_unchanged(target, before, await snapshot(world.container))
    rows.check()


async def assert_password_stored_verbatim(
    world: World, target: Target, body: dict[str, str], field_name: str, before: Snapshot
) -> None:
    """A password with a control character was accepted: exactly that password now logs in."""
    email = body.get("email", world.user.email)
    password = body[field_name]
    response = await world.client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    changes = diff(before, await snapshot(world.container))
    assert not changes.removed, changes
    if target.name == "register":
        assert [row["email"] for row in changes.added["users"]] == [email]
    else:
        (user_changes,) = changes.changed["users"].values()
        assert set(user_changes) == {"password_hash", "version", "updated_at"}, user_changes
        # Restore the world's credentials for the rows that follow.
        world.user = await account(world.client)


# --- 3. SQL- and template-injection strings in every string field -----------------------------


def injection_outcome(target: Target, field_name: str, raw_value: str) -> str:
    """What the contract makes of an injection string in a field: ``stored`` (a valid
    value there, kept verbatim) or the statuses that refuse it."""
    if field_name == "name":
        return "stored"
    if field_name == "email" and target.name in {"register", "update-me", "update-user"}:
        # Braces and dollars may stand in an address' local part; quotes, spaces and
        # semicolons may not.
        return "stored" if raw_value in TEMPLATE_INJECTIONS else "refused"
    if field_name in {"password", "new_password"} and target.name in {
        "register",
        "change-password",
    }:
        return "stored"
    return "refused"


def injected(field_name: str, value: str) -> str:
    """Where an address is expected the injection is its local part; passwords are
    padded to the minimum length, so that only their content is on trial."""
    if field_name in {"email", "username"}:
        return f"{value}@example.com"
    if field_name in PASSWORD_FIELDS:
        return value.ljust(8, "!")
    return value


def refusal_statuses(target: Target) -> set[int]:
    if target.name == "password-reset-request":
        return {202}  # the same answer for any address: no enumeration
    return {400, 401, 422}


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
async def test_injection_strings_are_refused_or_stored_verbatim(
    world: World, target: Target
) -> None:
    rows = Rows()
    for field_name in target.strings:
        for raw_value in INJECTIONS:
            value = injected(field_name, raw_value)
            label = f"{target.name} / {value!r} in {field_name}"
            body = target.base(world)
            if target.partial:
                body = {field_name: body[field_name]}
            body[field_name] = value
            outcome = injection_outcome(target, field_name, raw_value)
            with rows.row(label):
                before = await snapshot(world.container)
                response = await send(world, target, encode(target, body))
                after = await snapshot(world.container)
                if outcome == "refused":
                    statuses = refusal_statuses(target)
                    if statuses == {202}:
                        assert response.status_code == 202, response.text
                    else:
                        assert_problem(response, statuses)
                    assert_unchanged(target, before, after)
                    continue
                assert response.status_code in {200, 201, 204}, response.text
                assert_stored_verbatim(target, field_name, value, before, after)
                if field_name in PASSWORD_FIELDS:
                    email = body.get("email", world.user.email)
                    login = await world.client.post(
                        "/api/v1/auth/login", json={"email": email, "password": value}
                    )
                    assert login.status_code == 200, login.text
                    if target.name == "change-password":
                        world.user = await account(world.client)
                else:
                    assert response.json()[field_name] == value
    rows.check()


EXPECTED_EVENTS = {
    "register": "user.registered",
    "update-me": "user.updated",
    "update-user": "user.updated",
    "change-password": "user.password_changed",
}


def assert_stored_verbatim(
    target: Target, field_name: str, value: str, before: Snapshot, after: Snapshot
) -> None:
    changes = diff(before, after)
    assert not changes.removed, changes
    events = changes.added.pop("audit_events", [])
    assert [event["type"] for event in events] == [EXPECTED_EVENTS[target.name]], events
    if target.name == "register":
        assert set(changes.added) == {"users"}, changes
        (row,) = changes.added["users"]
        assert not changes.changed, changes
        if field_name != "password":
            assert row[field_name] == value
        return
    assert not changes.added, changes
    assert set(changes.changed) == {"users"}, changes
    (columns,) = changes.changed["users"].values()
    if field_name in PASSWORD_FIELDS:
        assert set(columns) == {"password_hash", "version", "updated_at"}, columns
        return
    keys = {"name": {"name", "name_key"}, "email": {"email", "email_key"}}[field_name]
    assert set(columns) - {"version", "updated_at", "email_verified"} == keys, columns
    assert columns[field_name][1] == value


async def test_template_injection_in_a_name_reaches_the_email_verbatim(
    mail_client: httpx.AsyncClient, smtp: Any
) -> None:
    sink, _ = smtp
    name = "{{7*7}} ${7*7} {% raw %}"
    email = unique_email("template")
    response = await mail_client.post(
        "/api/v1/users", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert response.status_code == 201, response.text
    tokens = await mail_client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    request = await mail_client.post(
        "/api/v1/auth/verify-email/request", headers=bearer(tokens.json()["access_token"])
    )
    assert request.status_code == 202, request.text

    (message,) = await sink.wait_for(1)
    for part in ("plain", "html"):
        body = message.get_body(preferencelist=(part,))
        assert body is not None, part
        content = body.get_content()
        assert f"Hello {name}," in content, content
        # Nothing was evaluated: no 49 outside the random parts (the link, the address).
        fixed_text = re.sub(r"https?://\S+", "", content).replace(email, "")
        assert "49" not in fixed_text, content


# --- 4. Mass assignment -------------------------------------------------------------------------

MASS_FIELDS: dict[str, Any] = {
    "is_superuser": True,
    "id": "00000000-0000-7000-8000-000000000000",
    "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    "email_verified": True,
    "is_active": False,
    "version": 99,
    "created_at": "2000-01-01T00:00:00Z",
}


def mass_statuses(target: Target, field_name: str) -> set[int]:
    if target.name == "update-user" and field_name in {"is_superuser", "is_active"}:
        return {403}  # real fields of that path, for superusers only
    return {422}


@pytest.mark.parametrize(
    "target", [t for t in TARGETS if not t.form], ids=lambda target: target.name
)
async def test_mass_assignment_fields_are_refused(world: World, target: Target) -> None:
    rows = Rows()
    for field_name, value in MASS_FIELDS.items():
        label = f"{target.name} / {field_name}"
        body: dict[str, Any] = {**target.base(world), field_name: value}
        with rows.row(label):
            before = await snapshot(world.container)
            response = await send(world, target, encode(target, body))
            problem = assert_problem(response, mass_statuses(target, field_name))
            if response.status_code == 422:
                locations = [tuple(error["loc"]) for error in problem["errors"]]
                assert ("body", field_name) in locations, locations
            assert_unchanged(target, before, await snapshot(world.container))
    rows.check()


async def test_the_token_endpoint_ignores_unknown_form_fields(world: World) -> None:
    """RFC 6749 §3.2: unknown parameters are ignored, so none can elevate the caller."""
    target = BY_NAME["token"]
    form = {"username": world.user.email, "password": world.user.password}
    form.update({name: str(value) for name, value in MASS_FIELDS.items()})
    before = await snapshot(world.container)
    response = await send(world, target, encode(target, form))
    assert response.status_code == 200, response.text
    changes = diff(before, await snapshot(world.container))
    assert not changes.changed, changes
    assert not changes.removed, changes
    assert set(changes.added) == {"sessions", "refresh_tokens", "audit_events"}, changes
    assert [event["type"] for event in changes.added["audit_events"]] == ["user.login_succeeded"]
    me = await world.client.get("/api/v1/users/me", headers=bearer(response.json()["access_token"]))
    assert me.json()["is_superuser"] is False
    assert me.json()["email_verified"] is False
    assert me.json()["id"] == world.user.id


# --- 5. Pagination parameters ----------------------------------------------------------------


def crafted_cursor(sort: str, key: str) -> str:
    return Cursor(sort=sort, key=key, id=uuid.UUID(int=1)).encode()


PAGINATION_CASES: list[tuple[str, str]] = [
    ("limit huge", "limit=" + str(10**30)),
    ("limit negative", "limit=-1"),
    ("limit zero", "limit=0"),
    ("limit over 100", "limit=101"),
    ("limit not a number", "limit=ten"),
    ("limit a float", "limit=1.5"),
    ("limit empty", "limit="),
    ("limit repeated", "limit=1&limit=2"),
    ("skip huge", "skip=" + str(10**30)),
    ("skip negative", "skip=-1"),
    ("skip not a number", "skip=abc"),
    ("skip a float", "skip=0.5"),
    ("skip repeated", "skip=0&skip=1"),
    ("sort unknown", "sort=name"),
    ("sort repeated", "sort=email&sort=-email"),
    ("is_active not a boolean", "is_active=maybe"),
    ("cursor garbage", "cursor=%%%not-a-cursor"),
    ("cursor too long", "cursor=" + "A" * 5000),
    ("cursor of another sort", "sort=email&cursor=" + crafted_cursor("-created_at", "x")),
    ("cursor with a naive time", "cursor=" + crafted_cursor("-created_at", "2020-01-01T00:00:00")),
    (
        "cursor before year 1 in UTC",
        "cursor=" + crafted_cursor("-created_at", "0001-01-01T00:00:00+05:00"),
    ),
    (
        "cursor after year 9999 in UTC",
        "cursor=" + crafted_cursor("-created_at", "9999-12-31T23:59:59-05:00"),
    ),
    ("cursor with a NUL key", "sort=email&cursor=" + crafted_cursor("email", "a\x00b")),
    ("cursor with a lone surrogate", "sort=email&cursor=" + crafted_cursor("email", "\ud800")),
    ("cursor repeated", "cursor=a&cursor=b"),
    ("q with a NUL", "q=a%00b"),
    ("q too long", "q=" + "q" * 300),
]
AUDIT_CASES: list[tuple[str, str]] = [
    ("limit huge", "limit=" + str(10**30)),
    ("limit negative", "limit=-1"),
    ("limit not a number", "limit=ten"),
    ("limit a float", "limit=1.5"),
    ("limit repeated", "limit=1&limit=2"),
    ("cursor garbage", "cursor=%%%"),
    ("cursor repeated", "cursor=a&cursor=b"),
    ("user_id malformed", "user_id=" + quote("' OR 1=1 --")),
    ("user_id repeated", f"user_id={uuid.UUID(int=1)}&user_id={uuid.UUID(int=2)}"),
    ("type with a NUL", "type=user.registered%00"),
    ("type unknown", "type=" + quote("{{7*7}}")),
]


@pytest.mark.parametrize(
    ("path", "cases"),
    [("/api/v1/users", PAGINATION_CASES), ("/api/v1/audit-events", AUDIT_CASES)],
    ids=["users", "audit-events"],
)
async def test_bad_list_parameters_are_refused(
    world: World, path: str, cases: list[tuple[str, str]]
) -> None:
    rows = Rows()
    for label, query in cases:
        with rows.row(f"{path} / {label}"):
            before = await snapshot(world.container)
            response = await world.client.get(f"{path}?{query}", headers=world.admin.headers)
            body = assert_problem(response, {422})
            assert body.get("errors"), body
            assert_unchanged(BY_NAME["register"], before, await snapshot(world.container))
    rows.check()


async def test_good_list_parameters_still_work(world: World) -> None:
    """The catalogue's refusals are specific: the same parameters, well formed, answer 200."""
    for query in ("limit=100&skip=0", "limit=1&sort=email", "q=user&is_active=true"):
        response = await world.client.get(f"/api/v1/users?{query}", headers=world.admin.headers)
        assert response.status_code == 200, (query, response.text)
    listed = await world.client.get("/api/v1/users?limit=1", headers=world.admin.headers)
    cursor = listed.json()["next_cursor"]
    assert cursor
    page = await world.client.get(
        "/api/v1/users", params={"limit": 1, "cursor": cursor}, headers=world.admin.headers
    )
    assert page.status_code == 200, page.text


# --- 6. Malformed ids in paths ----------------------------------------------------------------

MALFORMED_IDS = [
    "not-a-uuid",
    "123",
    quote("' OR 1=1 --", safe=""),
    quote('"; DROP TABLE users; --', safe=""),
    quote("{{7*7}}", safe=""),
    "%00",
    "%ED%A0%80",  # a lone surrogate, as UTF-8 bytes
    "0193a8f4-0000-7000-8000",  # truncated
    "0193a8f4-0000-7000-8000-000000000000x",  # trailing junk
    "9" * 400,
]
ID_ROUTES = [
    ("GET", "/api/v1/users/{id}", None),
    ("PATCH", "/api/v1/users/{id}", {"name": "Renamed"}),
    ("DELETE", "/api/v1/users/{id}", None),
    ("DELETE", "/api/v1/auth/sessions/{id}", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), ID_ROUTES, ids=[f"{m} {p}" for m, p, _ in ID_ROUTES]
)
async def test_malformed_ids_in_paths_are_refused(
    world: World, method: str, path: str, body: dict[str, str] | None
) -> None:
    rows = Rows()
    for raw_id in MALFORMED_IDS:
        label = f"{method} {path} / {raw_id[:40]}"
        with rows.row(label):
            before = await snapshot(world.container)
            response = await world.client.request(
                method, path.replace("{id}", raw_id), json=body, headers=world.admin.headers
            )
            problem = assert_problem(response, {422})
            assert any(error["loc"][0] == "path" for error in problem["errors"]), problem
            assert_unchanged(BY_NAME["register"], before, await snapshot(world.container))
    rows.check()


# --- 7. The same characters through GraphQL ----------------------------------------------------
# GraphQL string literals cannot hold a lone surrogate, but variables (JSON) can, so
# every string argument is sent as a variable. A NUL reaches the argument's own rules
# (a GraphQL error); a lone surrogate is not text, and refuses the whole request
# (a 400 problem) before any GraphQL runs.


@dataclass(frozen=True)
class GraphQLTarget:
    name: str
    document: str
    auth: str
    base: Callable[[World], dict[str, str]]
    login: bool = False

    @property
    def target(self) -> Target:
        """The REST twin, for ``assert_unchanged`` (only ``login`` matters there)."""
        return Target(self.name, "POST", "/graphql", self.auth, self.base, (), login=self.login)


GRAPHQL_TARGETS = [
    GraphQLTarget(
        "register",
        "mutation($email: String!, $password: String!, $name: String!) {"
        " register(email: $email, password: $password, name: $name) { id } }",
        "none",
        lambda w: {"email": unique_email("gql"), "password": PASSWORD, "name": "Bad Input"},
    ),
    GraphQLTarget(
        "login",
        "mutation($email: String!, $password: String!) {"
        " login(email: $email, password: $password) { accessToken } }",
        "none",
        lambda w: {"email": w.user.email, "password": "not the password"},
        login=True,
    ),
    GraphQLTarget(
        "refresh",
        "mutation($token: String!) { refresh(refreshToken: $token) { accessToken } }",
        "none",
        lambda w: {"token": w.user.refresh_token},
    ),
    GraphQLTarget(
        "logout",
        "mutation($token: String!) { logout(refreshToken: $token) }",
        "none",
        lambda w: {"token": w.user.refresh_token},
    ),
    GraphQLTarget(
        "updateUser",
        "mutation($id: ID!, $name: String, $email: String) {"
        " updateUser(id: $id, input: {name: $name, email: $email}) { id } }",
        "user",
        lambda w: {"id": w.user.id, "name": "Renamed", "email": unique_email("gql")},
    ),
    GraphQLTarget(
        "changePassword",
        "mutation($current: String!, $new: String!) {"
        " changePassword(currentPassword: $current, newPassword: $new) }",
        "user",
        lambda w: {"current": w.user.password, "new": NEW_PASSWORD},
    ),
    GraphQLTarget(
        "confirmEmail",
        "mutation($token: String!) { confirmEmail(token: $token) { id } }",
        "none",
        lambda w: {"token": FAKE_TOKEN},
    ),
    GraphQLTarget(
        "requestPasswordReset",
        "mutation($email: String!) { requestPasswordReset(email: $email) }",
        "none",
        lambda w: {"email": w.user.email},
    ),
    GraphQLTarget(
        "resetPassword",
        "mutation($token: String!, $new: String!) {"
        " resetPassword(token: $token, newPassword: $new) }",
        "none",
        lambda w: {"token": FAKE_TOKEN, "new": NEW_PASSWORD},
    ),
    GraphQLTarget(
        "users(query)",
        "query($query: String) { users(query: $query) { totalCount } }",
        "admin",
        lambda w: {"query": "user"},
    ),
    GraphQLTarget(
        "users(after)",
        "query($after: String) { users(after: $after) { totalCount } }",
        "admin",
        lambda w: {"after": crafted_cursor("-created_at", dt.datetime.now(dt.UTC).isoformat())},
    ),
    GraphQLTarget(
        "auditEvents(type)",
        "query($type: String) { auditEvents(type: $type) { nextCursor } }",
        "admin",
        lambda w: {"type": "user.registered"},
    ),
    GraphQLTarget(
        "auditEvents(userId)",
        "query($userId: ID) { auditEvents(userId: $userId) { nextCursor } }",
        "admin",
        lambda w: {"userId": w.user.id},
    ),
    GraphQLTarget(
        "user",
        "query($id: ID!) { user(id: $id) { id } }",
        "admin",
        lambda w: {"id": w.user.id},
    ),
]
GRAPHQL_PASSWORDS = {"password", "new"}
GRAPHQL_REFUSALS = {"BAD_USER_INPUT", "UNAUTHENTICATED"}


@pytest.mark.parametrize("target", GRAPHQL_TARGETS, ids=lambda target: target.name)
async def test_graphql_string_arguments_with_nul_or_lone_surrogates_are_refused(
    world: World, target: GraphQLTarget
) -> None:
    rows = Rows()
    for variable in target.base(world):
        for kind, char in BAD_CHARACTERS.items():
            if kind == "NUL" and variable in GRAPHQL_PASSWORDS:
                continue  # a control character is part of a password (see above)
            variables = target.base(world)
            variables[variable] = with_character(variables[variable], char)
            with rows.row(f"{target.name} / {kind} in ${variable}"):
                before = await snapshot(world.container)
                response = await world.client.post(
                    "/graphql",
                    content=json.dumps({"query": target.document, "variables": variables}).encode(),
                    headers={**world.headers(target.auth), "Content-Type": "application/json"},
                )
                await world.container.jobs.drain(grace_seconds=10)
                if kind == "lone surrogate":
                    assert_problem(response, {400})
                    assert_unchanged(target.target, before, await snapshot(world.container))
                    continue
                assert response.status_code == 200, response.text
                errors = response.json().get("errors") or []
                codes = [(error.get("extensions") or {}).get("code") for error in errors]
                assert codes, f"accepted: {response.text}"
                assert set(codes) <= GRAPHQL_REFUSALS, response.text
                assert_unchanged(target.target, before, await snapshot(world.container))
    rows.check()


def test_the_catalogue_covers_every_write_path() -> None:
    assert {target.name for target in TARGETS} == {
        "register",
        "update-me",
        "update-user",
        "change-password",
        "login",
        "token",
        "refresh",
        "logout",
        "verify-email-confirm",
        "password-reset-request",
        "password-reset-confirm",
    }
