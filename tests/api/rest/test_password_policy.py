"""The password policy: common passwords and the user's own email or name are refused,
with a 422 that says why, alike at registration, password change and password reset.
A refused password changes nothing; a good one is accepted everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from accounts.security.common_passwords import load_common_passwords
from tests.conftest import SmtpSink
from tests.factories import PASSWORD, bearer, full_width, login, register, unique_email
from tests.lifecycle_helpers import LOGIN, ME, PROBLEM_JSON, RESET_CONFIRM, reset_mail

Smtp = tuple[SmtpSink, int]
NAME = "Grace Hopper"
GOOD_PASSWORD = "a brand new passphrase"
COMMON = ["password1", "qwerty123"]


@dataclass
class Person:
    email: str
    name: str


# What each refused password is made of, and the word that must say why.
Candidate = Callable[[Person], str]
REFUSED: dict[str, tuple[Candidate, str]] = {
    "common-password1": (lambda person: "password1", "common"),
    "common-qwerty123": (lambda person: "qwerty123", "common"),
    # Full-width letters and digits: the same password once normalised (NFKC).
    "common-password1-full-width": (lambda person: full_width("password1"), "common"),
    "the-email": (lambda person: person.email, "email"),
    "the-email-upper-case": (lambda person: person.email.upper(), "email"),
    "the-email-local-part": (lambda person: person.email.split("@")[0], "email"),
    "the-name": (lambda person: person.name, "name"),
}
# Where a new password is given, and the field that holds it.
FIELDS = {"registration": "password", "change": "new_password", "reset": "new_password"}


async def can_log_in(client: httpx.AsyncClient, email: str, password: str) -> bool:
    response = await client.post(LOGIN, json={"email": email, "password": password})
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


async def set_password(
    where: str,
    client: httpx.AsyncClient,
    app: FastAPI,
    sink: SmtpSink,
    person: Person,
    password: str,
) -> httpx.Response:
    """Give ``password`` as a new password ``where``: at registration, or as an existing
    user (registered with PASSWORD) changing it or resetting it from an emailed link."""
    if where == "registration":
        return await client.post(
            "/api/v1/users",
            json={"email": person.email, "password": password, "name": person.name},
        )
    await register(client, email=person.email, name=person.name)
    if where == "change":
        tokens = await login(client, person.email)
        return await client.post(
            f"{ME}/password",
            json={"current_password": PASSWORD, "new_password": password},
            headers=bearer(tokens["access_token"]),
        )
    mail = await reset_mail(client, app, sink, person.email)
    return await client.post(RESET_CONFIRM, json={"token": mail.token, "new_password": password})


def test_the_shipped_common_password_list_is_large_and_holds_the_classics() -> None:
    common = load_common_passwords()

    assert len(common) >= 10_000
    for password in COMMON:
        assert password in common
    assert GOOD_PASSWORD not in common


@pytest.mark.parametrize("where", list(FIELDS))
@pytest.mark.parametrize("refused", list(REFUSED))
async def test_a_weak_password_is_refused_with_the_reason(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp, where: str, refused: str
) -> None:
    person = Person(email=unique_email("grace"), name=NAME)
    candidate, reason = REFUSED[refused]
    password = candidate(person)
    assert len(password) >= 8  # refused for what it is, not for its length

    response = await set_password(where, mail_client, mail_app, smtp[0], person, password)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    errors = response.json()["errors"]
    assert len(errors) == 1, errors
    assert errors[0]["loc"] == ["body", FIELDS[where]]
    assert reason in errors[0]["msg"]
    # Nothing changed: no account was made, or the old password still works.
    if where == "registration":
        assert not await can_log_in(mail_client, person.email, password)
        retry = await mail_client.post(
            "/api/v1/users",
            json={"email": person.email, "password": GOOD_PASSWORD, "name": person.name},
        )
        assert retry.status_code == 201, retry.text
    else:
        assert await can_log_in(mail_client, person.email, PASSWORD)
        assert not await can_log_in(mail_client, person.email, password)


@pytest.mark.parametrize("where", list(FIELDS))
async def test_a_good_password_is_accepted(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp, where: str
) -> None:
    person = Person(email=unique_email("grace"), name=NAME)

    response = await set_password(where, mail_client, mail_app, smtp[0], person, GOOD_PASSWORD)

    assert response.status_code == (201 if where == "registration" else 204), response.text
    assert await can_log_in(mail_client, person.email, GOOD_PASSWORD)
