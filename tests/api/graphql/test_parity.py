"""REST and GraphQL side by side: the same input gives the same result and the same error.

Each case names an operation, who calls it, and one abstract input; the operation's
two adapters turn that one input into a REST request and a GraphQL operation, so
both APIs are asked exactly the same thing against the same app and database. Both
answers are normalised into one ``Outcome`` and compared, then checked against the
outcome the case expects.

- Errors: REST status ↔ GraphQL ``extensions.code``: 401 ↔ UNAUTHENTICATED,
  403 ↔ FORBIDDEN, 404 ↔ NOT_FOUND (``null`` for ``user(id)``), 400 "Email already
  registered" ↔ EMAIL_TAKEN, 409 ↔ CONFLICT, 422 ↔ BAD_USER_INPUT, 400 "Current password
  is incorrect" ↔ BAD_USER_INPUT. Outside validation the messages must match too.
- Successes: the same user fields (REST snake_case ↔ GraphQL camelCase), timestamps
  compared as parsed datetimes.

Read-only cases run both APIs against one arranged state and compare every field
exactly. Cases whose success changes state (``fresh=True``) arrange the same state
twice, once per API; ids and emails are then compared through the names the
arrangement gave them, timestamps by their relation to the arranged ones, and the
effect is checked through the same REST probes afterwards.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from accounts.bootstrap import Container
from accounts.http.app import create_app
from tests.conftest import make_settings
from tests.factories import PASSWORD, bearer, unique_email

USER_SELECTION = "id email name isActive isSuperuser emailVerified createdAt updatedAt"
PAIR_SELECTION = "accessToken tokenType expiresIn refreshToken"
NEW_PASSWORD = "a brand new passphrase"
USER_OPERATIONS = {"register", "me", "user", "update"}


# --- the world a case is arranged in ---------------------------------------------------


@dataclass
class World:
    """Named users and values, and what a name stands for (to compare across runs)."""

    client: httpx.AsyncClient
    container: Container
    values: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    stamps: dict[str, tuple[dt.datetime, dt.datetime]] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        """``"@alice.id"`` stands for the value the arrangement stored under that name."""
        if isinstance(value, str) and value.startswith("@"):
            return self.values[value[1:]]
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        return value

    def token(self, role: str | None) -> dict[str, str]:
        return bearer(self.values[f"{role}.access"]) if role else {}

    def name_email(self, name: str, email: str) -> None:
        self.values[f"{name}.email"] = email
        self.labels[email.partition("@")[0].lower()] = name

    async def remember(self, name: str, user_id: str, password: str) -> None:
        login = await self.client.post(
            "/api/v1/auth/login",
            json={"email": self.values[f"{name}.email"], "password": password},
        )
        assert login.status_code == 200, login.text
        pair = login.json()
        self.values |= {
            f"{name}.id": user_id,
            f"{name}.access": pair["access_token"],
            f"{name}.refresh": pair["refresh_token"],
        }
        self.labels[user_id] = name
        me = await self.client.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
        assert me.status_code == 200, me.text
        self.stamps[name] = (
            parse_time(me.json()["created_at"]),
            parse_time(me.json()["updated_at"]),
        )


Step = Callable[[World], Awaitable[None]]


def user(name: str) -> Step:
    """A registered user called ``name``, logged in."""

    async def step(world: World) -> None:
        world.name_email(name, unique_email(name))
        response = await world.client.post(
            "/api/v1/users",
            json={"email": world.values[f"{name}.email"], "password": PASSWORD, "name": name},
        )
        assert response.status_code == 201, response.text
        await world.remember(name, response.json()["id"], PASSWORD)

    return step


def admin(name: str) -> Step:
    """A superuser called ``name``, created as an operator does, logged in."""

    async def step(world: World) -> None:
        world.name_email(name, unique_email(name))
        row = await world.container.users.create(
            world.values[f"{name}.email"], PASSWORD, name, is_superuser=True
        )
        await world.remember(name, str(row.id), PASSWORD)

    return step


def deactivated(name: str, *, by: str) -> Step:
    async def step(world: World) -> None:
        response = await world.client.patch(
            f"/api/v1/users/{world.values[f'{name}.id']}",
            json={"is_active": False},
            headers=world.token(by),
        )
        assert response.status_code == 200, response.text
        world.stamps[name] = (world.stamps[name][0], parse_time(response.json()["updated_at"]))

    return step


def logged_out(name: str) -> Step:
    async def step(world: World) -> None:
        response = await world.client.post(
            "/api/v1/auth/logout", json={"refresh_token": world.values[f"{name}.refresh"]}
        )
        assert response.status_code == 204, response.text

    return step


def refreshed(name: str) -> Step:
    """Spend ``name``'s refresh token once; the new one is ``name.refresh2``."""

    async def step(world: World) -> None:
        response = await world.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": world.values[f"{name}.refresh"]}
        )
        assert response.status_code == 200, response.text
        world.values[f"{name}.refresh2"] = response.json()["refresh_token"]

    return step


def second_session(name: str) -> Step:
    """Log ``name`` in again: ``name2`` is the same user in another session."""

    async def step(world: World) -> None:
        response = await world.client.post(
            "/api/v1/auth/login",
            json={"email": world.values[f"{name}.email"], "password": PASSWORD},
        )
        assert response.status_code == 200, response.text
        world.values[f"{name}2.access"] = response.json()["access_token"]

    return step


def cursor_after_first_page(*, by: str, limit: int) -> Step:
    """``cursor``: where the first page of ``limit`` users ends (taken from REST)."""

    async def step(world: World) -> None:
        response = await world.client.get(
            "/api/v1/users", params={"limit": limit}, headers=world.token(by)
        )
        assert response.status_code == 200, response.text
        world.values["cursor"] = response.json()["next_cursor"]
        assert world.values["cursor"]

    return step


def value(key: str, stored: str) -> Step:
    async def step(world: World) -> None:
        world.values[key] = stored

    return step


def shouted_email(name: str) -> Step:
    """``name.EMAIL``: ``name``'s email in upper case (the same account)."""

    async def step(world: World) -> None:
        world.values[f"{name}.EMAIL"] = world.values[f"{name}.email"].upper()

    return step


def new_email(name: str, *, domain: str = "Example.COM") -> Step:
    """An email nobody has yet, ``name.email`` (its domain in mixed case)."""

    async def step(world: World) -> None:
        world.name_email(name, f"{name}-{uuid.uuid4().hex[:10]}@{domain}")

    return step


# --- normalising the answers -----------------------------------------------------------


def parse_time(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    assert parsed.utcoffset() == dt.timedelta(0), value
    return parsed


def snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


@dataclass(frozen=True)
class Normaliser:
    world: World
    exact: bool

    def label(self, value: str) -> str:
        return self.world.labels.get(value, "new" if _is_uuid(value) else value)

    def email(self, value: str) -> str:
        local, _, domain = value.partition("@")
        return f"{self.world.labels.get(local.lower(), local)}@{domain}"

    def user(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        body = {snake(key): value for key, value in raw.items()}
        created, updated = parse_time(body["created_at"]), parse_time(body["updated_at"])
        name = self.label(body["id"])
        user = {
            **body,
            "id": name,
            "email": self.email(body["email"]),
            "created_at": created,
            "updated_at": updated,
        }
        if not self.exact:
            user["created_at"], user["updated_at"] = self._relative(name, created, updated)
        return user

    def _relative(self, name: str, created: dt.datetime, updated: dt.datetime) -> tuple[str, str]:
        """Timestamps as their relation to the arranged ones (runs differ in time)."""
        arranged = self.world.stamps.get(name)
        if arranged is None:
            return "new", "= created_at" if updated == created else "≠ created_at"
        return (
            "as arranged" if created == arranged[0] else f"changed from {arranged[0]}",
            "as arranged"
            if updated == arranged[1]
            else ("later" if updated > arranged[1] else "earlier"),
        )

    async def pair(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        body = {snake(key): value for key, value in raw.items()}
        me = await self.world.client.get("/api/v1/users/me", headers=bearer(body["access_token"]))
        known = {value for key, value in self.world.values.items() if key.endswith("refresh")}
        return {
            "token_type": body["token_type"],
            "expires_in": body["expires_in"],
            "access_token_is_for": self.label(me.json()["id"]) if me.status_code == 200 else None,
            "refresh_token_is_new": body["refresh_token"] not in known
            and len(body["refresh_token"]) >= 43,
        }

    def page(
        self, users: list[Mapping[str, Any]], total: int, next_cursor: str | None
    ) -> dict[str, Any]:
        return {
            "users": [self.user(item) for item in users],
            "total": total,
            "next_cursor": next_cursor,
        }


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Outcome:
    """``code``: "ok", "null", or the GraphQL error code (REST's status mapped to it)."""

    code: str
    value: Any = None
    message: str | None = None
    probes: Mapping[str, int] = field(default_factory=dict)


REST_CODES = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 409: "CONFLICT"}
REST_400_CODES = {
    "Email already registered": "EMAIL_TAKEN",
    "Current password is incorrect": "BAD_USER_INPUT",
}


async def rest_outcome(operation: str, response: httpx.Response, norm: Normaliser) -> Outcome:
    status = response.status_code
    if status == 204:
        return Outcome("ok", True)
    if status in {200, 201}:
        body = response.json()
        if operation == "list":
            return Outcome("ok", norm.page(body["items"], body["total"], body["next_cursor"]))
        if operation in {"login", "refresh"}:
            return Outcome("ok", await norm.pair(body))
        return Outcome("ok", norm.user(body))
    assert response.headers["content-type"].startswith("application/problem+json")
    detail = response.json()["detail"]
    if status == 404 and operation == "user":
        return Outcome("null")
    if status == 422:
        return Outcome("BAD_USER_INPUT")
    if status == 400 and detail in REST_400_CODES:
        return Outcome(REST_400_CODES[detail], message=_message(REST_400_CODES[detail], detail))
    code = REST_CODES.get(status, f"HTTP {status}")
    return Outcome(code, message=_message(code, detail))


def _message(code: str, message: str) -> str | None:
    # Validation messages are each API's own words; every other message is the
    # service's, and must read the same through both.
    return (
        None if code == "BAD_USER_INPUT" and message != "Current password is incorrect" else message
    )


async def graphql_outcome(
    operation: str, response: httpx.Response, norm: Normaliser, field_name: str
) -> Outcome:
    assert response.status_code == 200, response.text
    body = response.json()
    if body.get("errors"):
        if len(body["errors"]) != 1:
            return Outcome("several errors", body["errors"])
        error = body["errors"][0]
        code = error["extensions"]["code"]
        return Outcome(code, message=_message(code, error["message"]))
    value = body["data"][field_name]
    if value is None:
        return Outcome("null")
    if value is True:
        return Outcome("ok", True)
    if operation == "list":
        info = value["pageInfo"]
        return Outcome(
            "ok",
            norm.page(
                [edge["node"] for edge in value["edges"]],
                value["totalCount"],
                info["endCursor"] if info["hasNextPage"] else None,
            ),
        )
    if operation in {"login", "refresh"}:
        return Outcome("ok", await norm.pair(value))
    assert operation in USER_OPERATIONS
    return Outcome("ok", norm.user(value))


# --- the operations, each with its REST and GraphQL adapter ----------------------------


@dataclass(frozen=True)
class Operation:
    rest: Callable[[httpx.AsyncClient, dict[str, Any], dict[str, str]], Awaitable[httpx.Response]]
    document: str
    variables: Callable[[dict[str, Any]], dict[str, Any]]
    field: str


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def _list_params(args: dict[str, Any]) -> dict[str, Any]:
    names = {"limit": "limit", "cursor": "cursor", "q": "q", "is_active": "is_active"}
    return {names[key]: value for key, value in args.items()}


OPERATIONS: dict[str, Operation] = {
    "register": Operation(
        rest=lambda http, args, headers: http.post("/api/v1/users", json=args, headers=headers),
        document=f"""mutation ($email: String!, $password: String!, $name: String!) {{
          register(email: $email, password: $password, name: $name) {{ {USER_SELECTION} }} }}""",
        variables=lambda args: args,
        field="register",
    ),
    "login": Operation(
        rest=lambda http, args, headers: http.post(
            "/api/v1/auth/login", json=args, headers=headers
        ),
        document=f"""mutation ($email: String!, $password: String!) {{
          login(email: $email, password: $password) {{ {PAIR_SELECTION} }} }}""",
        variables=lambda args: args,
        field="login",
    ),
    "refresh": Operation(
        rest=lambda http, args, headers: http.post(
            "/api/v1/auth/refresh", json=args, headers=headers
        ),
        document=f"""mutation ($refreshToken: String!) {{
          refresh(refreshToken: $refreshToken) {{ {PAIR_SELECTION} }} }}""",
        variables=lambda args: {"refreshToken": args["refresh_token"]},
        field="refresh",
    ),
    "logout": Operation(
        rest=lambda http, args, headers: http.post(
            "/api/v1/auth/logout", json=args, headers=headers
        ),
        document="mutation ($refreshToken: String!) { logout(refreshToken: $refreshToken) }",
        variables=lambda args: {"refreshToken": args["refresh_token"]},
        field="logout",
    ),
    "me": Operation(
        rest=lambda http, args, headers: http.get("/api/v1/users/me", headers=headers),
        document=f"query {{ me {{ {USER_SELECTION} }} }}",
        variables=lambda args: {},
        field="me",
    ),
    "user": Operation(
        rest=lambda http, args, headers: http.get(f"/api/v1/users/{args['id']}", headers=headers),
        document=f"query ($id: ID!) {{ user(id: $id) {{ {USER_SELECTION} }} }}",
        variables=lambda args: args,
        field="user",
    ),
    "list": Operation(
        rest=lambda http, args, headers: http.get(
            "/api/v1/users", params=_list_params(args), headers=headers
        ),
        document=f"""query ($first: Int, $after: String, $query: String, $isActive: Boolean) {{
          users(first: $first, after: $after, query: $query, isActive: $isActive) {{
            edges {{ cursor node {{ {USER_SELECTION} }} }}
            pageInfo {{ hasNextPage endCursor }}
            totalCount }} }}""",
        variables=lambda args: {
            {"limit": "first", "cursor": "after", "q": "query", "is_active": "isActive"}[key]: value
            for key, value in args.items()
        },
        field="users",
    ),
    "update": Operation(
        rest=lambda http, args, headers: http.patch(
            f"/api/v1/users/{args['id']}", json=args["changes"], headers=headers
        ),
        document=f"""mutation ($id: ID!, $input: UpdateUserInput!) {{
          updateUser(id: $id, input: $input) {{ {USER_SELECTION} }} }}""",
        variables=lambda args: {
            "id": args["id"],
            "input": {_camel(key): value for key, value in args["changes"].items()},
        },
        field="updateUser",
    ),
    "delete": Operation(
        rest=lambda http, args, headers: http.delete(
            f"/api/v1/users/{args['id']}", headers=headers
        ),
        document="mutation ($id: ID!) { deleteUser(id: $id) }",
        variables=lambda args: args,
        field="deleteUser",
    ),
    "change_password": Operation(
        rest=lambda http, args, headers: http.post(
            "/api/v1/users/me/password", json=args, headers=headers
        ),
        document="""mutation ($currentPassword: String!, $newPassword: String!) {
          changePassword(currentPassword: $currentPassword, newPassword: $newPassword) }""",
        variables=lambda args: {_camel(key): value for key, value in args.items()},
        field="changePassword",
    ),
}


# --- probes: the effect of a mutation, observed the same way after either API -----------

Probe = Callable[[World], Awaitable[int]]


def me_status(role: str) -> Probe:
    async def probe(world: World) -> int:
        response = await world.client.get("/api/v1/users/me", headers=world.token(role))
        return response.status_code

    return probe


def login_status(name: str, password: str = PASSWORD) -> Probe:
    async def probe(world: World) -> int:
        response = await world.client.post(
            "/api/v1/auth/login",
            json={"email": world.values[f"{name}.email"], "password": password},
        )
        return response.status_code

    return probe


def refresh_status(key: str) -> Probe:
    async def probe(world: World) -> int:
        response = await world.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": world.values[key]}
        )
        return response.status_code

    return probe


# --- the table -------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    operation: str
    expect: str
    arrange: tuple[Step, ...] = ()
    caller: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    fresh: bool = False
    probes: dict[str, Probe] = field(default_factory=dict)


ALICE = (user("alice"),)
ALICE_BOB = (user("alice"), user("bob"))
ADMIN = (admin("admin"),)
ADMIN_ALICE = (admin("admin"), user("alice"))
ADMIN_FOUR = (admin("admin"), user("alice"), user("bob"), user("carol"))
ALICE_PASSWORD = {"email": "@alice.email", "password": PASSWORD}
NO_SUCH_ID = "0190f1d2-0000-7000-8000-000000000000"
LONG = "x" * 257

CASES = [
    # register
    Case(
        "register: ok",
        "register",
        "ok",
        arrange=(new_email("newcomer"),),
        args={"email": "@newcomer.email", "password": PASSWORD, "name": " New Comer "},
        fresh=True,
        probes={"login": login_status("newcomer")},
    ),
    Case(
        "register: email taken in another case",
        "register",
        "EMAIL_TAKEN",
        arrange=(*ALICE, shouted_email("alice")),
        args={"email": "@alice.EMAIL", "password": PASSWORD, "name": "Twin"},
    ),
    Case(
        "register: invalid email",
        "register",
        "BAD_USER_INPUT",
        args={"email": "not-an-email", "password": PASSWORD, "name": "A"},
    ),
    Case(
        "register: password too short",
        "register",
        "BAD_USER_INPUT",
        arrange=(new_email("short"),),
        args={"email": "@short.email", "password": "short", "name": "A"},
    ),
    Case(
        "register: password too long",
        "register",
        "BAD_USER_INPUT",
        arrange=(new_email("long"),),
        args={"email": "@long.email", "password": LONG, "name": "A"},
    ),
    Case(
        "register: blank name",
        "register",
        "BAD_USER_INPUT",
        arrange=(new_email("blank"),),
        args={"email": "@blank.email", "password": PASSWORD, "name": "   "},
    ),
    Case(
        "register: name with a NUL",
        "register",
        "BAD_USER_INPUT",
        arrange=(new_email("nul"),),
        args={"email": "@nul.email", "password": PASSWORD, "name": "A\x00B"},
    ),
    # login
    Case("login: ok", "login", "ok", arrange=ALICE, args=ALICE_PASSWORD),
    Case(
        "login: wrong password",
        "login",
        "UNAUTHENTICATED",
        arrange=ALICE,
        args={"email": "@alice.email", "password": "not the password"},
    ),
    Case(
        "login: unknown email",
        "login",
        "UNAUTHENTICATED",
        args={"email": "nobody@example.com", "password": PASSWORD},
    ),
    Case(
        "login: deactivated user",
        "login",
        "FORBIDDEN",
        arrange=(*ADMIN_ALICE, deactivated("alice", by="admin")),
        args=ALICE_PASSWORD,
    ),
    Case(
        "login: password too long",
        "login",
        "BAD_USER_INPUT",
        arrange=ALICE,
        args={"email": "@alice.email", "password": LONG},
    ),
    Case(
        "login: empty password",
        "login",
        "BAD_USER_INPUT",
        arrange=ALICE,
        args={"email": "@alice.email", "password": ""},
    ),
    # refresh
    Case(
        "refresh: ok",
        "refresh",
        "ok",
        arrange=ALICE,
        args={"refresh_token": "@alice.refresh"},
        fresh=True,
        probes={"old token again": refresh_status("alice.refresh")},
    ),
    Case(
        "refresh: unknown token",
        "refresh",
        "UNAUTHENTICATED",
        args={"refresh_token": "never-issued-" + "x" * 40},
    ),
    Case(
        "refresh: spent token",
        "refresh",
        "UNAUTHENTICATED",
        arrange=(*ALICE, refreshed("alice")),
        args={"refresh_token": "@alice.refresh"},
    ),
    Case(
        "refresh: after logout",
        "refresh",
        "UNAUTHENTICATED",
        arrange=(*ALICE, logged_out("alice")),
        args={"refresh_token": "@alice.refresh"},
    ),
    Case("refresh: empty token", "refresh", "BAD_USER_INPUT", args={"refresh_token": ""}),
    # Longer than any refresh token issued: not one of ours.
    Case(
        "refresh: oversized token", "refresh", "UNAUTHENTICATED", args={"refresh_token": "x" * 513}
    ),
    # logout
    Case(
        "logout: ok",
        "logout",
        "ok",
        arrange=ALICE,
        args={"refresh_token": "@alice.refresh"},
        fresh=True,
        probes={"me": me_status("alice"), "refresh": refresh_status("alice.refresh")},
    ),
    Case(
        "logout: unknown token",
        "logout",
        "UNAUTHENTICATED",
        args={"refresh_token": "never-issued-" + "x" * 40},
    ),
    Case(
        "logout: twice",
        "logout",
        "UNAUTHENTICATED",
        arrange=(*ALICE, logged_out("alice")),
        args={"refresh_token": "@alice.refresh"},
    ),
    # me
    Case("me: ok", "me", "ok", arrange=ALICE, caller="alice"),
    Case("me: superuser", "me", "ok", arrange=ADMIN, caller="admin"),
    Case("me: no token", "me", "UNAUTHENTICATED"),
    Case(
        "me: not a JWT",
        "me",
        "UNAUTHENTICATED",
        arrange=(value("forged.access", "not-a-jwt"),),
        caller="forged",
    ),
    Case(
        "me: revoked session",
        "me",
        "UNAUTHENTICATED",
        arrange=(*ALICE, logged_out("alice")),
        caller="alice",
    ),
    Case(
        "me: deactivated user",
        "me",
        "UNAUTHENTICATED",
        arrange=(*ADMIN_ALICE, deactivated("alice", by="admin")),
        caller="alice",
    ),
    # user by id
    Case("user: self", "user", "ok", arrange=ALICE, caller="alice", args={"id": "@alice.id"}),
    Case(
        "user: superuser reads another",
        "user",
        "ok",
        arrange=ADMIN_ALICE,
        caller="admin",
        args={"id": "@alice.id"},
    ),
    Case(
        "user: someone else's, as a regular user",
        "user",
        "null",
        arrange=ALICE_BOB,
        caller="alice",
        args={"id": "@bob.id"},
    ),
    Case(
        "user: a superuser, as a regular user",
        "user",
        "null",
        arrange=ADMIN_ALICE,
        caller="alice",
        args={"id": "@admin.id"},
    ),
    Case("user: missing", "user", "null", arrange=ADMIN, caller="admin", args={"id": NO_SUCH_ID}),
    Case(
        "user: malformed id",
        "user",
        "BAD_USER_INPUT",
        arrange=ALICE,
        caller="alice",
        args={"id": "not-a-uuid"},
    ),
    Case("user: no token", "user", "UNAUTHENTICATED", arrange=ALICE, args={"id": "@alice.id"}),
    # list
    Case("list: first page", "list", "ok", arrange=ADMIN_FOUR, caller="admin", args={"limit": 2}),
    Case(
        "list: next page",
        "list",
        "ok",
        arrange=(*ADMIN_FOUR, cursor_after_first_page(by="admin", limit=3)),
        caller="admin",
        args={"limit": 3, "cursor": "@cursor"},
    ),
    Case(
        "list: default page",
        "list",
        "ok",
        arrange=ADMIN_FOUR,
        caller="admin",
    ),
    Case(
        "list: filtered",
        "list",
        "ok",
        arrange=(*ADMIN_FOUR, deactivated("bob", by="admin")),
        caller="admin",
        args={"q": "CAR", "is_active": True},
    ),
    Case(
        "list: inactive only",
        "list",
        "ok",
        arrange=(*ADMIN_FOUR, deactivated("bob", by="admin")),
        caller="admin",
        args={"is_active": False},
    ),
    Case("list: regular user", "list", "FORBIDDEN", arrange=ALICE, caller="alice"),
    Case("list: no token", "list", "UNAUTHENTICATED"),
    Case(
        "list: limit 101",
        "list",
        "BAD_USER_INPUT",
        arrange=ADMIN,
        caller="admin",
        args={"limit": 101},
    ),
    Case(
        "list: limit 0", "list", "BAD_USER_INPUT", arrange=ADMIN, caller="admin", args={"limit": 0}
    ),
    Case(
        "list: malformed cursor",
        "list",
        "BAD_USER_INPUT",
        arrange=ADMIN,
        caller="admin",
        args={"cursor": "not a cursor"},
    ),
    Case(
        "list: query over 254 characters",
        "list",
        "BAD_USER_INPUT",
        arrange=ADMIN,
        caller="admin",
        args={"q": "q" * 255},
    ),
    # update
    Case(
        "update: own name and email",
        "update",
        "ok",
        arrange=(*ALICE, new_email("renamed")),
        caller="alice",
        args={"id": "@alice.id", "changes": {"name": " Alice B. ", "email": "@renamed.email"}},
        fresh=True,
        probes={"login with the new email": login_status("renamed")},
    ),
    Case(
        "update: nothing",
        "update",
        "ok",
        arrange=ALICE,
        caller="alice",
        args={"id": "@alice.id", "changes": {}},
    ),
    Case(
        "update: superuser deactivates",
        "update",
        "ok",
        arrange=ADMIN_ALICE,
        caller="admin",
        args={"id": "@alice.id", "changes": {"is_active": False}},
        fresh=True,
        probes={"her token": me_status("alice"), "her login": login_status("alice")},
    ),
    Case(
        "update: superuser promotes",
        "update",
        "ok",
        arrange=ADMIN_ALICE,
        caller="admin",
        args={"id": "@alice.id", "changes": {"is_superuser": True}},
        fresh=True,
    ),
    Case(
        "update: regular user sets is_superuser",
        "update",
        "FORBIDDEN",
        arrange=ALICE,
        caller="alice",
        args={"id": "@alice.id", "changes": {"is_superuser": True}},
    ),
    Case(
        "update: someone else, as a regular user",
        "update",
        "NOT_FOUND",
        arrange=ALICE_BOB,
        caller="alice",
        args={"id": "@bob.id", "changes": {"name": "Mallory"}},
    ),
    Case(
        "update: missing user",
        "update",
        "NOT_FOUND",
        arrange=ADMIN,
        caller="admin",
        args={"id": NO_SUCH_ID, "changes": {"name": "Nobody"}},
    ),
    Case(
        "update: email taken",
        "update",
        "EMAIL_TAKEN",
        arrange=ALICE_BOB,
        caller="alice",
        args={"id": "@alice.id", "changes": {"email": "@bob.email"}},
    ),
    Case(
        "update: last superuser demoted",
        "update",
        "CONFLICT",
        arrange=ADMIN,
        caller="admin",
        args={"id": "@admin.id", "changes": {"is_superuser": False}},
    ),
    Case(
        "update: last superuser deactivated",
        "update",
        "CONFLICT",
        arrange=ADMIN,
        caller="admin",
        args={"id": "@admin.id", "changes": {"is_active": False}},
    ),
    Case(
        "update: blank name",
        "update",
        "BAD_USER_INPUT",
        arrange=ALICE,
        caller="alice",
        args={"id": "@alice.id", "changes": {"name": "  "}},
    ),
    Case(
        "update: invalid email",
        "update",
        "BAD_USER_INPUT",
        arrange=ALICE,
        caller="alice",
        args={"id": "@alice.id", "changes": {"email": "nope"}},
    ),
    Case(
        "update: malformed id",
        "update",
        "BAD_USER_INPUT",
        arrange=ALICE,
        caller="alice",
        args={"id": "not-a-uuid", "changes": {"name": "X"}},
    ),
    Case(
        "update: no token",
        "update",
        "UNAUTHENTICATED",
        arrange=ALICE,
        args={"id": "@alice.id", "changes": {"name": "X"}},
    ),
    # delete
    Case(
        "delete: self",
        "delete",
        "ok",
        arrange=ALICE,
        caller="alice",
        args={"id": "@alice.id"},
        fresh=True,
        probes={"her token": me_status("alice"), "her login": login_status("alice")},
    ),
    Case(
        "delete: superuser deletes another",
        "delete",
        "ok",
        arrange=ADMIN_ALICE,
        caller="admin",
        args={"id": "@alice.id"},
        fresh=True,
        probes={"her token": me_status("alice"), "admin's token": me_status("admin")},
    ),
    Case(
        "delete: someone else, as a regular user",
        "delete",
        "NOT_FOUND",
        arrange=ALICE_BOB,
        caller="alice",
        args={"id": "@bob.id"},
        probes={"bob's token": me_status("bob")},
    ),
    Case(
        "delete: missing user",
        "delete",
        "NOT_FOUND",
        arrange=ADMIN,
        caller="admin",
        args={"id": NO_SUCH_ID},
    ),
    Case(
        "delete: last superuser",
        "delete",
        "CONFLICT",
        arrange=ADMIN,
        caller="admin",
        args={"id": "@admin.id"},
        probes={"admin's token": me_status("admin")},
    ),
    Case(
        "delete: malformed id",
        "delete",
        "BAD_USER_INPUT",
        arrange=ALICE,
        caller="alice",
        args={"id": "not-a-uuid"},
    ),
    Case("delete: no token", "delete", "UNAUTHENTICATED", arrange=ALICE, args={"id": "@alice.id"}),
    # change password
    Case(
        "change password: ok",
        "change_password",
        "ok",
        arrange=(*ALICE, second_session("alice")),
        caller="alice",
        args={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        fresh=True,
        probes={
            "this session": me_status("alice"),
            "other session": me_status("alice2"),
            "new password": login_status("alice", NEW_PASSWORD),
            "old password": login_status("alice"),
        },
    ),
    Case(
        "change password: wrong current password",
        "change_password",
        "BAD_USER_INPUT",
        arrange=ALICE,
        caller="alice",
        args={"current_password": "not my password", "new_password": NEW_PASSWORD},
        probes={"old password": login_status("alice")},
    ),
    Case(
        "change password: new one too short",
        "change_password",
        "BAD_USER_INPUT",
        arrange=ALICE,
        caller="alice",
        args={"current_password": PASSWORD, "new_password": "short"},
    ),
    Case(
        "change password: new one too long",
        "change_password",
        "BAD_USER_INPUT",
        arrange=ALICE,
        caller="alice",
        args={"current_password": PASSWORD, "new_password": LONG},
    ),
    Case(
        "change password: no token",
        "change_password",
        "UNAUTHENTICATED",
        args={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    ),
]


# --- running a case --------------------------------------------------------------------


async def arrange(case: Case, client: httpx.AsyncClient, container: Container) -> World:
    world = World(client, container)
    for step in case.arrange:
        await step(world)
    return world


async def through_rest(case: Case, world: World) -> Outcome:
    operation = OPERATIONS[case.operation]
    args = world.resolve(case.args)
    response = await operation.rest(world.client, args, world.token(case.caller))
    outcome = await rest_outcome(case.operation, response, Normaliser(world, exact=not case.fresh))
    return await with_probes(case, world, outcome)


async def through_graphql(case: Case, world: World) -> Outcome:
    operation = OPERATIONS[case.operation]
    args = world.resolve(case.args)
    response = await world.client.post(
        "/graphql",
        json={"query": operation.document, "variables": operation.variables(args)},
        headers=world.token(case.caller),
    )
    outcome = await graphql_outcome(
        case.operation, response, Normaliser(world, exact=not case.fresh), operation.field
    )
    return await with_probes(case, world, outcome)


async def with_probes(case: Case, world: World, outcome: Outcome) -> Outcome:
    if not case.probes:
        return outcome
    results = {name: await probe(world) for name, probe in case.probes.items()}
    return Outcome(outcome.code, outcome.value, outcome.message, results)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_rest_and_graphql_agree(
    client: httpx.AsyncClient, container: Container, case: Case
) -> None:
    if case.fresh:
        rest = await through_rest(case, await arrange(case, client, container))
        graphql = await through_graphql(case, await arrange(case, client, container))
    else:
        world = await arrange(case, client, container)
        rest = await through_rest(case, world)
        graphql = await through_graphql(case, world)

    assert graphql == rest, f"REST: {rest}\nGraphQL: {graphql}"
    assert rest.code == case.expect, rest


def test_the_table_covers_every_shared_operation() -> None:
    assert {case.operation for case in CASES} == set(OPERATIONS)
    for operation in OPERATIONS:
        outcomes = {case.expect for case in CASES if case.operation == operation}
        assert "ok" in outcomes or "null" in outcomes, operation
        assert outcomes - {"ok", "null"}, operation


async def test_closed_registration_is_refused_alike(database_url: str) -> None:
    closed = create_app(make_settings(database_url, registration_open=False))
    async with (
        LifespanManager(closed),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=closed), base_url="http://testserver"
        ) as http,
    ):
        args = {"email": unique_email(), "password": PASSWORD, "name": "Closed"}
        rest = await http.post("/api/v1/users", json=args)
        graphql = await http.post(
            "/graphql",
            json={"query": OPERATIONS["register"].document, "variables": args},
        )

    assert rest.status_code == 403, rest.text
    [error] = graphql.json()["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["message"] == rest.json()["detail"]
