"""Passwords are hashed and compared in Unicode NFKC form (NIST SP 800-63B).

The same password typed where accents are composed ("é", one code point) and where
they are not ("e" and a combining accent) logs in to the same account. Hashes made
before normalisation, of the password as typed, still verify.
"""

from __future__ import annotations

import unicodedata
import uuid

import httpx
import pytest
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type

from accounts.bootstrap import Container
from accounts.security.passwords import HashParameters, Match, PasswordHasher
from tests.factories import full_width, register

LOGIN_URL = "/api/v1/auth/login"
TYPED = "Café crème brûlée 42"
NFC = unicodedata.normalize("NFC", TYPED)
NFD = unicodedata.normalize("NFD", TYPED)


async def login_status(client: httpx.AsyncClient, email: str, password: str) -> int:
    response = await client.post(LOGIN_URL, json={"email": email, "password": password})
    assert response.status_code in (200, 401), response.text
    return response.status_code


@pytest.mark.parametrize(
    ("registered", "typed"), [(NFC, NFD), (NFD, NFC)], ids=["nfc-then-nfd", "nfd-then-nfc"]
)
async def test_a_password_logs_in_however_its_accents_are_encoded(
    client: httpx.AsyncClient, registered: str, typed: str
) -> None:
    assert registered != typed
    user = await register(client, password=registered)
    assert await login_status(client, user["email"], typed) == 200
    assert await login_status(client, user["email"], registered) == 200
    assert await login_status(client, user["email"], typed.replace("42", "43")) == 401


async def test_a_full_width_password_is_the_same_as_its_ascii_form(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client, password=full_width("my passphrase"))
    assert await login_status(client, user["email"], "my passphrase") == 200


async def test_a_hash_made_before_normalisation_verifies_and_is_replaced_at_login(
    client: httpx.AsyncClient, container: Container
) -> None:
    user = await register(client)
    # What an earlier version stored: the argon2id hash of the password as typed.
    settings = container.settings
    legacy = Argon2Hasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
        type=Type.ID,
    ).hash(NFD)
    async with container.uow(write=True) as uow:
        stored = await uow.users.get_for_update(uuid.UUID(user["id"]))
        assert stored is not None
        stored.password_hash = legacy
        await uow.commit()

    assert await login_status(client, user["email"], NFD.replace("42", "43")) == 401
    assert await login_status(client, user["email"], NFD) == 200

    # That login replaced the hash with one of the normalised form, so that the
    # fallback is needed no more for this account.
    async with container.uow() as uow:
        rehashed = await uow.users.get(uuid.UUID(user["id"]))
    assert rehashed is not None
    assert rehashed.password_hash != legacy
    assert Argon2Hasher().verify(rehashed.password_hash, NFC)
    assert await login_status(client, user["email"], NFC) == 200


@pytest.mark.parametrize("password", [NFD, "plain ascii words"], ids=["changed", "unchanged"])
async def test_an_unknown_email_costs_as_many_verifies_as_a_wrong_password(
    password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = PasswordHasher(HashParameters(memory_kib=8 * 1024, time_cost=1), workers=1)
    try:
        stored = await hasher.hash("the real password")
        verifies: list[str] = []
        matches = PasswordHasher._matches

        def counted(self: PasswordHasher, password_hash: str, given: str) -> bool:
            verifies.append(password_hash)
            return matches(self, password_hash, given)

        monkeypatch.setattr(PasswordHasher, "_matches", counted)
        assert await hasher.verify(stored, password) is Match.NONE
        known = len(verifies)
        verifies.clear()
        assert await hasher.verify(None, password) is Match.NONE
        assert len(verifies) == known
        # Two for a password normalisation changes (new form, then as typed), else one.
        assert known == (2 if password == NFD else 1)
    finally:
        hasher.close()


async def test_a_password_that_normalisation_shortens_below_the_minimum_is_refused(
    client: httpx.AsyncClient,
) -> None:
    # Eight code points as typed ("e" and a combining acute accent, four times), four
    # once normalised: the hashed password would be shorter than the minimum.
    decomposed = unicodedata.normalize("NFD", "éééé")
    assert len(decomposed) == 8
    response = await client.post(
        "/api/v1/users",
        json={"email": "short@example.com", "password": decomposed, "name": "Short"},
    )
    assert response.status_code == 422, response.text
    assert ["body", "password"] in [error["loc"] for error in response.json()["errors"]]
