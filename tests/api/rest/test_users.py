"""``/api/v1/users``: registration, the caller's own account, and user administration.

Everything in the Users table of the API contract except GET /api/v1/users (see
test_user_list.py) and the concurrency of demotions.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from accounts.bootstrap import Container
from accounts.http.app import create_app
from accounts.settings import Settings
from tests.conftest import make_settings
from tests.factories import (
    PASSWORD,
    Account,
    account,
    bearer,
    login,
    register,
    superuser,
    unique_email,
)

USERS = "/api/v1/users"
ME = f"{USERS}/me"
USER_FIELDS = {
    "id",
    "email",
    "name",
    "is_active",
    "is_superuser",
    "email_verified",
    "created_at",
    "updated_at",
}
PROBLEM_FIELDS = {"type", "title", "status", "detail", "request_id"}
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app itself, its lifespan running.

    Overrides conftest's ``app``, which yields ``LifespanManager.app``: in asgi-lifespan
    2.1 that is a plain ASGI function wrapping the app, so conftest's ``container``
    fixture (``app.state.container``) fails with AttributeError. Remove this override
    once conftest yields the FastAPI instance.
    """
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


# --- helpers ---------------------------------------------------------------------------


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem with ``status`` and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_FIELDS
    assert body["status"] == status
    return body


def validation_errors(response: httpx.Response) -> list[dict[str, Any]]:
    """Assert a 422 problem with a well-formed ``errors`` list and return it."""
    body = problem(response, 422)
    errors: list[dict[str, Any]] = body["errors"]
    assert errors
    for error in errors:
        assert set(error) == {"loc", "msg", "type"}
        assert isinstance(error["loc"], list)
        assert isinstance(error["msg"], str)
        assert isinstance(error["type"], str)
    return errors


def error_fields(errors: list[dict[str, Any]]) -> set[str | int]:
    return {part for error in errors for part in error["loc"]}


def timestamp(value: str) -> dt.datetime:
    assert RFC3339_UTC.match(value), value
    parsed = dt.datetime.fromisoformat(value)
    assert parsed.utcoffset() == dt.timedelta(0)
    return parsed


def new_user_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"email": unique_email(), "password": PASSWORD, "name": "Ada Lovelace"}
    body.update(overrides)
    return body


async def user_count(container: Container) -> int:
    count: int = await container.users.count()
    return count


async def stored_user(container: Container, user_id: str) -> Any:
    async with container.uow() as uow:
        return await uow.users.get(uuid.UUID(user_id))


async def mark_email_verified(container: Container, user_id: str) -> None:
    """No API verifies an email yet, so set the flag in the database directly."""
    async with container.uow(write=True) as uow:
        user = await uow.users.get_for_update(uuid.UUID(user_id))
        assert user is not None
        user.email_verified = True
        await uow.commit()


async def me(client: httpx.AsyncClient, who: Account) -> dict[str, Any]:
    response = await client.get(ME, headers=who.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def etag_of(client: httpx.AsyncClient, who: Account, user_id: str) -> str:
    response = await client.get(f"{USERS}/{user_id}", headers=who.headers)
    assert response.status_code == 200, response.text
    return response.headers["ETag"]


@asynccontextmanager
async def client_with(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings)
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


# --- POST /api/v1/users ----------------------------------------------------------------


async def test_registration_returns_201_with_exactly_the_user_fields(
    client: httpx.AsyncClient,
) -> None:
    body = new_user_body(name="Ada Lovelace")
    response = await client.post(USERS, json=body)
    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) == USER_FIELDS
    assert user["email"] == body["email"]
    assert user["name"] == "Ada Lovelace"
    assert user["is_active"] is True
    assert user["is_superuser"] is False
    assert user["email_verified"] is False


async def test_registration_response_never_contains_the_password_or_its_hash(
    client: httpx.AsyncClient, container: Container
) -> None:
    response = await client.post(USERS, json=new_user_body())
    assert response.status_code == 201
    stored = await stored_user(container, response.json()["id"])
    assert PASSWORD not in response.text
    assert stored.password_hash not in response.text
    assert "argon2" not in response.text
    assert "password" not in response.text


async def test_registration_stores_the_password_only_as_an_argon2id_hash(
    client: httpx.AsyncClient, container: Container
) -> None:
    user = await register(client)
    stored = await stored_user(container, user["id"])
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash


async def test_registered_id_is_a_lowercase_canonical_uuid7(client: httpx.AsyncClient) -> None:
    user = await register(client)
    parsed = uuid.UUID(user["id"])
    assert user["id"] == str(parsed)
    assert user["id"] == user["id"].lower()
    assert parsed.version == 7


async def test_registered_ids_are_time_ordered(client: httpx.AsyncClient) -> None:
    first = await register(client)
    second = await register(client)
    assert uuid.UUID(first["id"]).bytes < uuid.UUID(second["id"]).bytes


async def test_registered_timestamps_are_rfc3339_in_utc(client: httpx.AsyncClient) -> None:
    user = await register(client)
    created_at = timestamp(user["created_at"])
    updated_at = timestamp(user["updated_at"])
    assert created_at == updated_at


async def test_read_back_timestamps_are_rfc3339_in_utc_and_unchanged(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    read = (await client.get(f"{USERS}/{ada.id}", headers=ada.headers)).json()
    assert timestamp(read["created_at"]) == timestamp(read["updated_at"])
    assert timestamp((await me(client, ada))["created_at"]) == timestamp(read["created_at"])


async def test_registration_sets_location_to_the_new_user(client: httpx.AsyncClient) -> None:
    response = await client.post(USERS, json=new_user_body())
    assert response.status_code == 201
    assert response.headers["Location"] == f"/api/v1/users/{response.json()['id']}"


async def test_registration_with_an_email_taken_in_another_letter_case_gets_400(
    client: httpx.AsyncClient, container: Container
) -> None:
    local = f"Ada.Lovelace-{uuid.uuid4().hex[:8]}"
    await register(client, email=f"{local}@Example.com")
    response = await client.post(USERS, json=new_user_body(email=f"{local.lower()}@EXAMPLE.COM"))
    body = problem(response, 400)
    assert body["detail"] == "Email already registered"
    assert await user_count(container) == 1


async def test_registration_with_an_email_differing_only_in_local_part_case_gets_400(
    client: httpx.AsyncClient,
) -> None:
    local = f"grace-{uuid.uuid4().hex[:8]}"
    await register(client, email=f"{local}@example.com")
    response = await client.post(USERS, json=new_user_body(email=f"{local.upper()}@example.com"))
    assert problem(response, 400)["detail"] == "Email already registered"


@pytest.mark.parametrize(
    "email",
    ["not-an-email", "ada@", "@example.com", "ada@@example.com", "ada example@example.com", ""],
)
async def test_registration_with_an_invalid_email_gets_422(
    client: httpx.AsyncClient, container: Container, email: str
) -> None:
    errors = validation_errors(await client.post(USERS, json=new_user_body(email=email)))
    assert "email" in error_fields(errors)
    assert await user_count(container) == 0


async def test_registration_with_an_email_over_254_characters_gets_422(
    client: httpx.AsyncClient,
) -> None:
    email = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".com"
    assert len(email) == 255
    errors = validation_errors(await client.post(USERS, json=new_user_body(email=email)))
    assert "email" in error_fields(errors)


async def test_registration_with_an_email_of_exactly_254_characters_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    email = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
    assert len(email) == 254
    response = await client.post(USERS, json=new_user_body(email=email))
    assert response.status_code == 201, response.text
    assert response.json()["email"] == email


@pytest.mark.parametrize("length", [7, 257])
async def test_registration_with_a_password_out_of_range_gets_422(
    client: httpx.AsyncClient, container: Container, length: int
) -> None:
    password = ("Zq8-mK2v" * 40)[:length]
    errors = validation_errors(await client.post(USERS, json=new_user_body(password=password)))
    assert "password" in error_fields(errors)
    assert await user_count(container) == 0


@pytest.mark.parametrize("length", [8, 256])
async def test_registration_with_a_password_at_a_length_limit_is_accepted(
    client: httpx.AsyncClient, length: int
) -> None:
    password = ("Zq8-mK2v" * 40)[:length]
    user = await register(client, password=password)
    tokens = await login(client, user["email"], password)
    assert tokens["access_token"]


async def test_registration_accepts_any_unicode_password_without_composition_rules(
    client: httpx.AsyncClient,
) -> None:
    password = "пароль 密码 🔑 émoji"
    user = await register(client, password=password)
    assert (await login(client, user["email"], password))["access_token"]


@pytest.mark.parametrize("name", ["", "   ", "\t \n"])
async def test_registration_with_a_blank_name_gets_422(
    client: httpx.AsyncClient, container: Container, name: str
) -> None:
    errors = validation_errors(await client.post(USERS, json=new_user_body(name=name)))
    assert "name" in error_fields(errors)
    assert await user_count(container) == 0


async def test_registration_with_a_name_of_101_characters_after_trimming_gets_422(
    client: httpx.AsyncClient, container: Container
) -> None:
    errors = validation_errors(
        await client.post(USERS, json=new_user_body(name="  " + "n" * 101 + "  "))
    )
    assert "name" in error_fields(errors)
    assert await user_count(container) == 0


async def test_registration_with_a_padded_100_character_name_stores_it_trimmed(
    client: httpx.AsyncClient, container: Container
) -> None:
    name = "N" * 100
    response = await client.post(USERS, json=new_user_body(name=f"   {name}   "))
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name
    assert (await stored_user(container, response.json()["id"])).name == name


@pytest.mark.parametrize(
    "name", ["Ada\x07Lovelace", "Ada\tLovelace", "Ada\nLovelace", "Ada\x1bLovelace", "Ada\x7f"]
)
async def test_registration_with_a_control_character_in_the_name_gets_422(
    client: httpx.AsyncClient, container: Container, name: str
) -> None:
    errors = validation_errors(await client.post(USERS, json=new_user_body(name=name)))
    assert "name" in error_fields(errors)
    assert await user_count(container) == 0


@pytest.mark.parametrize("name", ["Ada\x00Lovelace", "\x00", "Ada\x00"])
async def test_registration_with_nul_in_the_name_gets_422(
    client: httpx.AsyncClient, container: Container, name: str
) -> None:
    errors = validation_errors(await client.post(USERS, json=new_user_body(name=name)))
    assert "name" in error_fields(errors)
    assert await user_count(container) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("is_superuser", True), ("is_active", False), ("email_verified", True), ("id", None)],
)
async def test_registration_with_an_unknown_field_gets_422_and_creates_no_user(
    client: httpx.AsyncClient, container: Container, field: str, value: Any
) -> None:
    value = str(uuid.uuid4()) if field == "id" else value
    body = new_user_body(**{field: value})
    errors = validation_errors(await client.post(USERS, json=body))
    assert ["body", field] in [error["loc"] for error in errors]
    assert await user_count(container) == 0
    # The email is still free.
    assert (await client.post(USERS, json=new_user_body(email=body["email"]))).status_code == 201


@pytest.mark.parametrize("missing", ["email", "password", "name"])
async def test_registration_missing_a_field_gets_422(
    client: httpx.AsyncClient, container: Container, missing: str
) -> None:
    body = new_user_body()
    del body[missing]
    errors = validation_errors(await client.post(USERS, json=body))
    assert ["body", missing] in [error["loc"] for error in errors]
    assert {error["type"] for error in errors} == {"missing"}
    assert await user_count(container) == 0


async def test_registration_with_an_empty_body_gets_422(client: httpx.AsyncClient) -> None:
    validation_errors(await client.post(USERS, json={}))


@pytest.mark.parametrize(
    "content", [b'{"email": "a@example.com", "password": ', b"not json", b"[1, 2", b""]
)
async def test_registration_with_invalid_json_gets_422(
    client: httpx.AsyncClient, container: Container, content: bytes
) -> None:
    response = await client.post(
        USERS, content=content, headers={"Content-Type": "application/json"}
    )
    validation_errors(response)
    assert await user_count(container) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": "Sup3r-Secret-Passw0rd!", "name": "Ada"},
        {"email": unique_email(), "password": "Sh0rt!x", "name": "Ada"},
        {"email": unique_email(), "password": "L0ng-Secret!" * 22, "name": "Ada"},
        {"email": unique_email(), "password": "Sup3r-Secret-Passw0rd!", "name": "  "},
        {"email": unique_email(), "password": "Sup3r-Secret-Passw0rd!", "name": "A\x00"},
        {
            "email": unique_email(),
            "password": "Sup3r-Secret-Passw0rd!",
            "name": "Ada",
            "is_superuser": True,
        },
        {"email": unique_email(), "password": ["Sup3r-Secret-Passw0rd!"], "name": "Ada"},
        {"email": unique_email(), "password": "\ud800Sup3r-Secret-Passw0rd!", "name": "Ada"},
    ],
    ids=[
        "bad-email",
        "short-password",
        "long-password",
        "blank-name",
        "nul-name",
        "unknown-field",
        "password-not-a-string",
        "lone-surrogate",
    ],
)
async def test_registration_422_never_echoes_the_submitted_password(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    # Sent pre-encoded: json.dumps escapes the lone surrogate, which UTF-8 cannot carry.
    response = await client.post(
        USERS, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    validation_errors(response)
    secret = body["password"][0] if isinstance(body["password"], list) else body["password"]
    secret = secret.lstrip("\ud800")
    assert secret[:7] not in response.text
    assert "Secret" not in response.text
    assert "Sh0rt" not in response.text


async def test_registration_422_for_invalid_json_never_echoes_the_password(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        USERS,
        content=b'{"email": "ada@example.com", "password": "Sup3r-Secret-Passw0rd!", "name": ',
        headers={"Content-Type": "application/json"},
    )
    validation_errors(response)
    assert "Sup3r" not in response.text


async def test_registration_when_closed_by_config_gets_403(database_url: str) -> None:
    settings = make_settings(database_url, registration_open=False)
    async with client_with(settings) as closed:
        problem(await closed.post(USERS, json=new_user_body()), 403)


async def test_registration_when_closed_creates_no_user(database_url: str) -> None:
    settings = make_settings(database_url, registration_open=False)
    body = new_user_body()
    async with client_with(settings) as closed:
        assert (await closed.post(USERS, json=body)).status_code == 403
        response = await closed.post(
            "/api/v1/auth/login", json={"email": body["email"], "password": body["password"]}
        )
        problem(response, 401)


async def test_registration_when_closed_still_lets_existing_users_work(database_url: str) -> None:
    settings = make_settings(database_url, registration_open=False)
    application = create_app(settings)
    async with LifespanManager(application) as manager:
        container: Container = application.state.container
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            admin = await superuser(http, container)
            assert (await http.get(ME, headers=admin.headers)).status_code == 200


async def test_email_of_a_deleted_user_can_be_registered_again(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    assert (await client.delete(ME, headers=ada.headers)).status_code == 204
    response = await client.post(USERS, json=new_user_body(email=ada.email))
    assert response.status_code == 201, response.text
    assert response.json()["id"] != ada.id


async def test_email_of_a_user_deleted_by_a_superuser_can_be_registered_again_in_another_case(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    assert (await client.delete(f"{USERS}/{ada.id}", headers=admin.headers)).status_code == 204
    response = await client.post(USERS, json=new_user_body(email=ada.email.upper()))
    assert response.status_code == 201, response.text


# --- GET /api/v1/users/me -------------------------------------------------------------


async def test_reading_me_returns_the_caller(client: httpx.AsyncClient) -> None:
    registered = await register(client, name="Grace Hopper")
    tokens = await login(client, registered["email"])
    response = await client.get(ME, headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert response.json() == registered


async def test_reading_me_without_a_token_gets_401_with_www_authenticate_bearer(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(ME)
    problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_reading_me_with_a_garbage_token_gets_401(client: httpx.AsyncClient) -> None:
    response = await client.get(ME, headers=bearer("not-a-jwt"))
    problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


# --- PATCH /api/v1/users/me -----------------------------------------------------------


async def test_updating_my_name_stores_it_trimmed(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    response = await client.patch(ME, headers=ada.headers, json={"name": "  Ada King  "})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Ada King"
    assert (await me(client, ada))["name"] == "Ada King"
    assert (await stored_user(container, ada.id)).name == "Ada King"


async def test_updating_my_email_changes_the_login_email(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    new_email = unique_email("renamed")
    response = await client.patch(ME, headers=ada.headers, json={"email": new_email})
    assert response.status_code == 200, response.text
    assert response.json()["email"] == new_email
    assert (await me(client, ada))["email"] == new_email
    assert (await login(client, new_email))["access_token"]
    old = await client.post("/api/v1/auth/login", json={"email": ada.email, "password": PASSWORD})
    problem(old, 401)


async def test_updating_my_email_sets_email_verified_to_false(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    await mark_email_verified(container, ada.id)
    assert (await me(client, ada))["email_verified"] is True
    response = await client.patch(ME, headers=ada.headers, json={"email": unique_email()})
    assert response.status_code == 200, response.text
    assert response.json()["email_verified"] is False
    assert (await stored_user(container, ada.id)).email_verified is False


async def test_updating_only_my_name_leaves_email_verified_as_it_was(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    await mark_email_verified(container, ada.id)
    response = await client.patch(ME, headers=ada.headers, json={"name": "Still Verified"})
    assert response.status_code == 200, response.text
    assert response.json()["email_verified"] is True
    assert (await stored_user(container, ada.id)).email_verified is True


async def test_updating_my_email_to_one_taken_in_any_case_gets_400(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    grace = await register(client)
    response = await client.patch(ME, headers=ada.headers, json={"email": grace["email"].upper()})
    assert problem(response, 400)["detail"] == "Email already registered"
    assert (await stored_user(container, ada.id)).email == ada.email


async def test_updating_me_with_is_superuser_gets_422_and_changes_nothing(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    response = await client.patch(
        ME, headers=ada.headers, json={"name": "Sneaky", "is_superuser": True}
    )
    errors = validation_errors(response)
    assert ["body", "is_superuser"] in [error["loc"] for error in errors]
    stored = await stored_user(container, ada.id)
    assert stored.is_superuser is False
    assert stored.name != "Sneaky"


async def test_updating_me_with_is_active_gets_422(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    response = await client.patch(ME, headers=ada.headers, json={"is_active": False})
    validation_errors(response)
    assert (await me(client, ada))["is_active"] is True


@pytest.mark.parametrize(
    "body", [{"name": ""}, {"name": "x" * 101}, {"name": "A\x00"}, {"email": "nope"}]
)
async def test_updating_me_with_an_invalid_value_gets_422(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    ada = await account(client)
    before = await me(client, ada)
    validation_errors(await client.patch(ME, headers=ada.headers, json=body))
    assert await me(client, ada) == before


async def test_updating_me_advances_updated_at(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    before = await me(client, ada)
    response = await client.patch(ME, headers=ada.headers, json={"name": "Later Name"})
    assert response.status_code == 200
    after = response.json()
    assert timestamp(after["updated_at"]) > timestamp(before["updated_at"])
    assert after["created_at"] == before["created_at"]


async def test_updating_me_changes_the_etag(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    before = await etag_of(client, ada, ada.id)
    response = await client.patch(ME, headers=ada.headers, json={"name": "Later Name"})
    assert response.status_code == 200
    assert response.headers["ETag"] != before
    assert await etag_of(client, ada, ada.id) == response.headers["ETag"]


async def test_changing_my_password_changes_my_etag_and_updated_at(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    before = await client.get(f"{USERS}/{ada.id}", headers=ada.headers)
    response = await client.post(
        f"{ME}/password",
        headers=ada.headers,
        json={"current_password": PASSWORD, "new_password": "a different passphrase"},
    )
    assert response.status_code == 204, response.text
    after = await client.get(f"{USERS}/{ada.id}", headers=ada.headers)
    assert after.json()["updated_at"] != before.json()["updated_at"]
    assert after.headers["ETag"] != before.headers["ETag"]
    # What a client saw before the change no longer passes as current.
    stale = await client.patch(
        ME, headers={**ada.headers, "If-Match": before.headers["ETag"]}, json={"name": "Stale"}
    )
    problem(stale, 412)


async def test_updating_me_without_a_token_gets_401(client: httpx.AsyncClient) -> None:
    response = await client.patch(ME, json={"name": "Nobody"})
    problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


# --- DELETE /api/v1/users/me ----------------------------------------------------------


async def test_deleting_me_returns_204_with_no_body(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    response = await client.delete(ME, headers=ada.headers)
    assert response.status_code == 204
    assert response.content == b""


async def test_after_deleting_me_login_fails_with_401(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    assert (await client.delete(ME, headers=ada.headers)).status_code == 204
    response = await client.post(
        "/api/v1/auth/login", json={"email": ada.email, "password": ada.password}
    )
    assert problem(response, 401)["detail"] == "Incorrect email or password"


async def test_after_deleting_me_my_tokens_get_401(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    assert (await client.delete(ME, headers=ada.headers)).status_code == 204
    problem(await client.get(ME, headers=ada.headers), 401)
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": ada.refresh_token})
    problem(refresh, 401)


async def test_deleting_me_erases_the_row(client: httpx.AsyncClient, container: Container) -> None:
    ada = await account(client)
    assert (await client.delete(ME, headers=ada.headers)).status_code == 204
    assert await stored_user(container, ada.id) is None


async def test_deleting_me_without_a_token_gets_401(client: httpx.AsyncClient) -> None:
    response = await client.delete(ME)
    problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


# --- POST /api/v1/users/me/password ---------------------------------------------------

NEW_PASSWORD = "a brand new passphrase"


async def test_changing_my_password_returns_204_and_the_new_password_logs_in(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    response = await client.post(
        f"{ME}/password",
        headers=ada.headers,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 204, response.text
    assert (await login(client, ada.email, NEW_PASSWORD))["access_token"]


async def test_after_changing_my_password_the_old_one_no_longer_logs_in(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    response = await client.post(
        f"{ME}/password",
        headers=ada.headers,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 204
    old = await client.post("/api/v1/auth/login", json={"email": ada.email, "password": PASSWORD})
    problem(old, 401)


async def test_changing_my_password_revokes_my_other_sessions_but_keeps_this_one(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    other = await login(client, ada.email)
    response = await client.post(
        f"{ME}/password",
        headers=ada.headers,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 204
    problem(await client.get(ME, headers=bearer(other["access_token"])), 401)
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]}
    )
    problem(refresh, 401)
    assert (await client.get(ME, headers=ada.headers)).status_code == 200
    kept = await client.post("/api/v1/auth/refresh", json={"refresh_token": ada.refresh_token})
    assert kept.status_code == 200, kept.text


async def test_changing_my_password_with_a_wrong_current_password_gets_400(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    response = await client.post(
        f"{ME}/password",
        headers=ada.headers,
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
    )
    assert problem(response, 400)["detail"] == "Current password is incorrect"
    assert (await login(client, ada.email, PASSWORD))["access_token"]


@pytest.mark.parametrize("new_password", ["Sh0rt!x", "L0ng-Secret!" * 22])
async def test_changing_my_password_to_one_out_of_range_gets_422_and_keeps_the_old(
    client: httpx.AsyncClient, new_password: str
) -> None:
    ada = await account(client)
    response = await client.post(
        f"{ME}/password",
        headers=ada.headers,
        json={"current_password": PASSWORD, "new_password": new_password},
    )
    errors = validation_errors(response)
    assert "new_password" in error_fields(errors)
    assert new_password[:7] not in response.text
    assert PASSWORD not in response.text
    assert (await login(client, ada.email, PASSWORD))["access_token"]


async def test_changing_my_password_with_an_unknown_field_gets_422(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    response = await client.post(
        f"{ME}/password",
        headers=ada.headers,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD, "user_id": ada.id},
    )
    validation_errors(response)
    assert (await login(client, ada.email, PASSWORD))["access_token"]


async def test_changing_my_password_without_a_token_gets_401(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{ME}/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    problem(response, 401)


# --- GET /api/v1/users/{id} -----------------------------------------------------------


async def test_reading_myself_by_id_returns_200_with_an_etag(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    response = await client.get(f"{USERS}/{ada.id}", headers=ada.headers)
    assert response.status_code == 200
    assert response.json()["id"] == ada.id
    assert response.json()["email"] == ada.email
    etag = response.headers["ETag"]
    assert re.fullmatch(r'"[^"]+"', etag), etag


async def test_etag_is_stable_while_the_user_is_unchanged(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    assert await etag_of(client, ada, ada.id) == await etag_of(client, ada, ada.id)


async def test_superuser_reads_any_user_by_id(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    response = await client.get(f"{USERS}/{ada.id}", headers=admin.headers)
    assert response.status_code == 200
    assert response.json() == await me(client, ada)
    assert response.headers["ETag"]


async def test_non_superuser_reading_another_user_gets_404(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    grace = await account(client)
    response = await client.get(f"{USERS}/{grace.id}", headers=ada.headers)
    problem(response, 404)
    assert grace.email not in response.text


async def test_non_superuser_reading_another_user_looks_the_same_as_a_missing_one(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    grace = await account(client)
    hidden = problem(await client.get(f"{USERS}/{grace.id}", headers=ada.headers), 404)
    missing = problem(await client.get(f"{USERS}/{uuid.uuid4()}", headers=ada.headers), 404)
    del hidden["request_id"], missing["request_id"]
    assert hidden == missing


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "0193zzzz-0000-7000-8000-000000000000"])
async def test_reading_a_malformed_user_id_gets_422(client: httpx.AsyncClient, bad_id: str) -> None:
    ada = await account(client)
    errors = validation_errors(await client.get(f"{USERS}/{bad_id}", headers=ada.headers))
    assert "user_id" in error_fields(errors)


@pytest.mark.parametrize(
    "spelling",
    [
        lambda id_: f"urn:uuid:{id_}",
        lambda id_: f"{{{id_}}}",
        lambda id_: id_.replace("-", ""),
        lambda id_: f" {id_}",
    ],
    ids=["urn", "braces", "no-hyphens", "leading-space"],
)
async def test_reading_myself_by_a_non_canonical_spelling_of_my_id_gets_422(
    client: httpx.AsyncClient, spelling: Any
) -> None:
    ada = await account(client)
    response = await client.get(f"{USERS}/{spelling(ada.id)}", headers=ada.headers)
    assert "user_id" in error_fields(validation_errors(response))


async def test_an_id_in_upper_case_hex_digits_is_the_same_id(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    response = await client.get(f"{USERS}/{ada.id.upper()}", headers=ada.headers)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == ada.id


async def test_superuser_reading_a_nonexistent_user_gets_404(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    problem(await client.get(f"{USERS}/{uuid.uuid4()}", headers=admin.headers), 404)


async def test_reading_a_user_by_id_without_a_token_gets_401(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    problem(await client.get(f"{USERS}/{ada.id}"), 401)


# --- PATCH /api/v1/users/{id} ---------------------------------------------------------


async def test_user_can_change_their_own_name_and_email_by_id(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    new_email = unique_email("self")
    response = await client.patch(
        f"{USERS}/{ada.id}", headers=ada.headers, json={"name": " Countess ", "email": new_email}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Countess"
    assert response.json()["email"] == new_email
    stored = await stored_user(container, ada.id)
    assert (stored.name, stored.email) == ("Countess", new_email)


@pytest.mark.parametrize(
    "body", [{"is_active": True}, {"is_active": False}, {"is_superuser": True}]
)
async def test_non_superuser_sending_privilege_fields_for_themself_gets_403(
    client: httpx.AsyncClient, container: Container, body: dict[str, Any]
) -> None:
    ada = await account(client)
    response = await client.patch(
        f"{USERS}/{ada.id}", headers=ada.headers, json={"name": "Changed", **body}
    )
    problem(response, 403)
    stored = await stored_user(container, ada.id)
    assert (stored.is_active, stored.is_superuser, stored.name) == (True, False, "Test User")


async def test_non_superuser_patching_another_user_gets_404_and_changes_nothing(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    grace = await account(client)
    response = await client.patch(f"{USERS}/{grace.id}", headers=ada.headers, json={"name": "X"})
    problem(response, 404)
    assert (await stored_user(container, grace.id)).name == "Test User"


async def test_non_superuser_sending_privilege_fields_for_another_user_gets_404(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    grace = await account(client)
    response = await client.patch(
        f"{USERS}/{grace.id}", headers=ada.headers, json={"is_active": False}
    )
    problem(response, 404)
    assert (await stored_user(container, grace.id)).is_active is True


async def test_superuser_can_change_all_four_fields_of_a_user(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    new_email = unique_email("changed")
    changes = {"name": "Changed", "email": new_email, "is_active": False, "is_superuser": True}
    response = await client.patch(f"{USERS}/{ada.id}", headers=admin.headers, json=changes)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {key: body[key] for key in changes} == changes
    stored = await stored_user(container, ada.id)
    assert (stored.name, stored.email, stored.is_active, stored.is_superuser) == (
        "Changed",
        new_email,
        False,
        True,
    )


async def test_superuser_can_promote_a_user_who_then_sees_everyone(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    grace = await account(client)
    response = await client.patch(
        f"{USERS}/{ada.id}", headers=admin.headers, json={"is_superuser": True}
    )
    assert response.status_code == 200
    assert (await client.get(f"{USERS}/{grace.id}", headers=ada.headers)).status_code == 200


@pytest.mark.parametrize("field", ["is_active", "is_superuser"])
@pytest.mark.parametrize("value", ["false", "true", "no", 0, 1], ids=repr)
async def test_a_flag_that_is_not_a_json_boolean_gets_422_and_changes_nothing(
    client: httpx.AsyncClient, container: Container, field: str, value: object
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    response = await client.patch(f"{USERS}/{ada.id}", headers=admin.headers, json={field: value})
    assert ["body", field] in [error["loc"] for error in validation_errors(response)]
    stored = await stored_user(container, ada.id)
    assert (stored.is_active, stored.is_superuser) == (True, False)


async def test_superuser_patching_a_nonexistent_user_gets_404(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    response = await client.patch(
        f"{USERS}/{uuid.uuid4()}", headers=admin.headers, json={"name": "Ghost"}
    )
    problem(response, 404)


async def test_patching_a_malformed_user_id_gets_422(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    validation_errors(await client.patch(f"{USERS}/nope", headers=ada.headers, json={"name": "X"}))


async def test_patching_with_an_unknown_field_gets_422(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    response = await client.patch(
        f"{USERS}/{ada.id}", headers=admin.headers, json={"email_verified": True}
    )
    errors = validation_errors(response)
    assert ["body", "email_verified"] in [error["loc"] for error in errors]
    assert (await stored_user(container, ada.id)).email_verified is False


async def test_patching_with_the_current_etag_returns_200_and_a_new_etag(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    etag = await etag_of(client, ada, ada.id)
    response = await client.patch(
        f"{USERS}/{ada.id}", headers={**ada.headers, "If-Match": etag}, json={"name": "Matched"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Matched"
    assert response.headers["ETag"] != etag
    assert await etag_of(client, ada, ada.id) == response.headers["ETag"]


async def test_patching_with_a_stale_etag_gets_412_and_changes_nothing(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    stale = await etag_of(client, ada, ada.id)
    first = await client.patch(f"{USERS}/{ada.id}", headers=ada.headers, json={"name": "First"})
    assert first.status_code == 200
    response = await client.patch(
        f"{USERS}/{ada.id}", headers={**ada.headers, "If-Match": stale}, json={"name": "Second"}
    )
    problem(response, 412)
    assert (await stored_user(container, ada.id)).name == "First"
    assert await etag_of(client, ada, ada.id) == first.headers["ETag"]


async def test_superuser_patching_with_a_stale_etag_gets_412_and_changes_nothing(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    stale = await etag_of(client, admin, ada.id)
    assert (
        await client.patch(ME, headers=ada.headers, json={"name": "Changed By Ada"})
    ).status_code == 200
    response = await client.patch(
        f"{USERS}/{ada.id}",
        headers={**admin.headers, "If-Match": stale},
        json={"is_active": False},
    )
    problem(response, 412)
    stored = await stored_user(container, ada.id)
    assert (stored.is_active, stored.name) == (True, "Changed By Ada")


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
@pytest.mark.parametrize("tag", [b'"\xb2"', b'"\xb9"', b'"1\xb3"'], ids=["2", "1", "13"])
async def test_an_if_match_of_superscript_digits_gets_412(
    client: httpx.AsyncClient, method: str, tag: bytes
) -> None:
    ada = await account(client)
    # Header values are read as latin-1: "²" arrives, and str.isdigit() says yes to it,
    # which made int() raise (a 500).
    response = await client.request(
        method,
        f"{USERS}/{ada.id}",
        headers={**ada.headers, "If-Match": tag},
        json={"name": "Superscript"} if method == "PATCH" else None,
    )
    problem(response, 412)


async def test_patching_with_if_match_star_returns_200(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    response = await client.patch(
        f"{USERS}/{ada.id}", headers={**ada.headers, "If-Match": "*"}, json={"name": "Starred"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Starred"


async def test_patching_me_with_a_stale_etag_gets_412(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    stale = await etag_of(client, ada, ada.id)
    assert (await client.patch(ME, headers=ada.headers, json={"name": "One"})).status_code == 200
    response = await client.patch(
        ME, headers={**ada.headers, "If-Match": stale}, json={"name": "Two"}
    )
    problem(response, 412)
    assert (await me(client, ada))["name"] == "One"


async def test_patching_a_user_to_an_email_taken_in_any_case_gets_400(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    grace = await register(client)
    response = await client.patch(
        f"{USERS}/{ada.id}", headers=admin.headers, json={"email": grace["email"].swapcase()}
    )
    assert problem(response, 400)["detail"] == "Email already registered"
    assert (await stored_user(container, ada.id)).email == ada.email


async def test_patching_my_email_by_id_to_a_taken_one_gets_400(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    grace = await register(client)
    response = await client.patch(
        f"{USERS}/{ada.id}", headers=ada.headers, json={"email": grace["email"]}
    )
    assert problem(response, 400)["detail"] == "Email already registered"


# --- DELETE /api/v1/users/{id} --------------------------------------------------------


@pytest.mark.parametrize("path", ["by-id", "me"])
@pytest.mark.parametrize(("seen", "status"), [("stale", 412), ("current", 204)])
async def test_deleting_with_if_match_deletes_only_the_version_the_caller_saw(
    client: httpx.AsyncClient, container: Container, path: str, seen: str, status: int
) -> None:
    ada = await account(client)
    stale = await etag_of(client, ada, ada.id)
    assert (await client.patch(ME, headers=ada.headers, json={"name": "Since"})).status_code == 200
    etag = stale if seen == "stale" else await etag_of(client, ada, ada.id)
    url = ME if path == "me" else f"{USERS}/{ada.id}"
    response = await client.delete(url, headers={**ada.headers, "If-Match": etag})
    assert response.status_code == status, response.text
    async with container.uow() as uow:
        left = await uow.users.get(uuid.UUID(ada.id))
    assert (left is None) == (status == 204)


async def test_user_deleting_themself_by_id_gets_204(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    response = await client.delete(f"{USERS}/{ada.id}", headers=ada.headers)
    assert response.status_code == 204
    assert await stored_user(container, ada.id) is None
    problem(await client.get(ME, headers=ada.headers), 401)


async def test_superuser_deleting_another_user_gets_204_and_the_user_is_gone(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    assert (await client.delete(f"{USERS}/{ada.id}", headers=admin.headers)).status_code == 204
    problem(await client.get(f"{USERS}/{ada.id}", headers=admin.headers), 404)
    assert await stored_user(container, ada.id) is None


async def test_non_superuser_deleting_another_user_gets_404_and_deletes_nothing(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    grace = await account(client)
    problem(await client.delete(f"{USERS}/{grace.id}", headers=ada.headers), 404)
    assert await stored_user(container, grace.id) is not None
    assert (await client.get(ME, headers=grace.headers)).status_code == 200


async def test_superuser_deleting_a_nonexistent_user_gets_404(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    problem(await client.delete(f"{USERS}/{uuid.uuid4()}", headers=admin.headers), 404)


async def test_deleting_a_malformed_user_id_gets_422(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    validation_errors(await client.delete(f"{USERS}/not-a-uuid", headers=ada.headers))
    assert (await client.get(ME, headers=ada.headers)).status_code == 200


# --- the last active superuser --------------------------------------------------------


async def test_last_superuser_cannot_demote_themself(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    response = await client.patch(
        f"{USERS}/{admin.id}", headers=admin.headers, json={"is_superuser": False}
    )
    problem(response, 409)
    assert (await me(client, admin))["is_superuser"] is True


async def test_last_superuser_cannot_deactivate_themself(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    response = await client.patch(
        f"{USERS}/{admin.id}", headers=admin.headers, json={"is_active": False}
    )
    problem(response, 409)
    assert (await me(client, admin))["is_active"] is True


async def test_last_superuser_cannot_delete_themself_via_me(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    problem(await client.delete(ME, headers=admin.headers), 409)
    assert await stored_user(container, admin.id) is not None
    assert (await client.get(ME, headers=admin.headers)).status_code == 200


async def test_last_superuser_cannot_delete_themself_by_id(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    problem(await client.delete(f"{USERS}/{admin.id}", headers=admin.headers), 409)
    assert await stored_user(container, admin.id) is not None


async def test_last_superuser_demotion_attempt_changes_nothing_else_in_the_request(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    response = await client.patch(
        f"{USERS}/{admin.id}",
        headers=admin.headers,
        json={"name": "Renamed", "is_superuser": False},
    )
    problem(response, 409)
    stored = await stored_user(container, admin.id)
    assert (stored.name, stored.is_superuser) == ("Admin", True)


async def test_with_two_superusers_one_can_demote_the_other_then_not_themself(
    client: httpx.AsyncClient, container: Container
) -> None:
    first = await superuser(client, container)
    second = await superuser(client, container)
    demoted = await client.patch(
        f"{USERS}/{second.id}", headers=first.headers, json={"is_superuser": False}
    )
    assert demoted.status_code == 200, demoted.text
    assert demoted.json()["is_superuser"] is False
    response = await client.patch(
        f"{USERS}/{first.id}", headers=first.headers, json={"is_superuser": False}
    )
    problem(response, 409)
    assert (await stored_user(container, first.id)).is_superuser is True


async def test_with_two_superusers_one_can_demote_themself(
    client: httpx.AsyncClient, container: Container
) -> None:
    first = await superuser(client, container)
    await superuser(client, container)
    response = await client.patch(
        f"{USERS}/{first.id}", headers=first.headers, json={"is_superuser": False}
    )
    assert response.status_code == 200, response.text
    assert (await stored_user(container, first.id)).is_superuser is False


async def test_an_inactive_superuser_does_not_count_towards_keeping_the_last_one(
    client: httpx.AsyncClient, container: Container
) -> None:
    first = await superuser(client, container)
    second = await superuser(client, container)
    deactivated = await client.patch(
        f"{USERS}/{second.id}", headers=first.headers, json={"is_active": False}
    )
    assert deactivated.status_code == 200, deactivated.text
    problem(
        await client.patch(
            f"{USERS}/{first.id}", headers=first.headers, json={"is_superuser": False}
        ),
        409,
    )
    problem(await client.delete(ME, headers=first.headers), 409)


async def test_with_two_superusers_one_can_delete_the_other_but_then_not_themself(
    client: httpx.AsyncClient, container: Container
) -> None:
    first = await superuser(client, container)
    second = await superuser(client, container)
    assert (await client.delete(f"{USERS}/{second.id}", headers=first.headers)).status_code == 204
    problem(await client.delete(ME, headers=first.headers), 409)


# --- deactivation and deletion cut sessions off ---------------------------------------


async def deactivate(client: httpx.AsyncClient, admin: Account, user_id: str) -> None:
    response = await client.patch(
        f"{USERS}/{user_id}", headers=admin.headers, json={"is_active": False}
    )
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False


async def test_deactivated_users_access_token_gets_401_at_once(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    assert (await client.get(ME, headers=ada.headers)).status_code == 200
    await deactivate(client, admin, ada.id)
    response = await client.get(ME, headers=ada.headers)
    problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_deactivated_users_refresh_token_gets_401(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    await deactivate(client, admin, ada.id)
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": ada.refresh_token})
    problem(response, 401)


async def test_deactivated_user_cannot_log_in(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    await deactivate(client, admin, ada.id)
    response = await client.post(
        "/api/v1/auth/login", json={"email": ada.email, "password": ada.password}
    )
    problem(response, 403)


async def test_reactivating_a_user_does_not_resurrect_their_old_sessions(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    await deactivate(client, admin, ada.id)
    reactivated = await client.patch(
        f"{USERS}/{ada.id}", headers=admin.headers, json={"is_active": True}
    )
    assert reactivated.status_code == 200
    problem(await client.get(ME, headers=ada.headers), 401)
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": ada.refresh_token})
    problem(refresh, 401)


async def test_reactivated_user_can_log_in_again(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    await deactivate(client, admin, ada.id)
    reactivated = await client.patch(
        f"{USERS}/{ada.id}", headers=admin.headers, json={"is_active": True}
    )
    assert reactivated.status_code == 200
    tokens = await login(client, ada.email, ada.password)
    assert (await client.get(ME, headers=bearer(tokens["access_token"]))).status_code == 200


async def test_deletion_by_a_superuser_cuts_off_the_deleted_users_tokens(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    assert (await client.delete(f"{USERS}/{ada.id}", headers=admin.headers)).status_code == 204
    response = await client.get(ME, headers=ada.headers)
    problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": ada.refresh_token})
    problem(refresh, 401)


async def test_deactivating_one_user_leaves_other_users_sessions_alone(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await account(client)
    grace = await account(client)
    await deactivate(client, admin, ada.id)
    assert (await client.get(ME, headers=grace.headers)).status_code == 200
    assert (await client.get(ME, headers=admin.headers)).status_code == 200
