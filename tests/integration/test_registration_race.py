"""Concurrency on one account: racing registrations and parallel logins.

The unique index on the email key must decide a registration race (not a prior
SELECT), whatever the letter case, and SQLite's single writer must queue parallel
logins instead of failing with "database is locked".
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import func, select

from accounts.bootstrap import Container
from accounts.http.app import create_app
from accounts.models import AuthSession, User
from accounts.settings import Settings
from tests.conftest import make_settings
from tests.factories import PASSWORD, register

RACERS = 20
PARALLEL_LOGINS = 10


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Rate limits are not what these tests are about: keep them from interfering.
    return make_settings(database_url, rate_limits="off")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    # conftest's ``app`` yields LifespanManager.app, which asgi-lifespan 2.x wraps in
    # a state middleware (a plain function), so ``container`` cannot reach
    # ``app.state`` through it. Yield the FastAPI app itself, its lifespan running.
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


def case_variants(email: str, count: int) -> list[str]:
    """``count`` distinct spellings of ``email`` that differ only in letter case."""
    letters = [index for index, char in enumerate(email) if char.isalpha()]
    assert 2 ** len(letters) >= count
    variants = []
    for number in range(count):
        chars = list(email)
        for bit, index in enumerate(letters):
            if number >> bit & 1:
                chars[index] = chars[index].upper()
        variants.append("".join(chars))
    assert len(set(variants)) == count
    return variants


async def register_all(client: httpx.AsyncClient, emails: list[str]) -> list[httpx.Response]:
    return await asyncio.gather(
        *(
            client.post(
                "/api/v1/users",
                json={"email": email, "password": PASSWORD, "name": f"Racer {number}"},
            )
            for number, email in enumerate(emails)
        )
    )


async def rows_with_email(container: Container, email: str) -> int:
    async with container.database.read_engine.connect() as connection:
        result = await connection.execute(
            select(func.count()).select_from(User).where(User.email_key == email.lower())
        )
        return int(result.scalar_one())


def assert_one_winner(responses: list[httpx.Response]) -> None:
    statuses = sorted(response.status_code for response in responses)
    assert not [status for status in statuses if status >= 500], statuses
    assert statuses == [201] + [400] * (RACERS - 1), statuses
    for response in responses:
        if response.status_code == 400:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["detail"] == "Email already registered"


async def test_parallel_registrations_of_one_email_create_exactly_one_account(
    client: httpx.AsyncClient, container: Container
) -> None:
    email = f"race-{uuid.uuid4().hex[:8]}@example.com"

    responses = await register_all(client, [email] * RACERS)

    assert_one_winner(responses)
    assert await container.users.count() == 1
    assert await rows_with_email(container, email) == 1


async def test_parallel_registrations_differing_only_in_case_create_exactly_one_account(
    client: httpx.AsyncClient, container: Container
) -> None:
    email = f"race-{uuid.uuid4().hex[:8]}@example.com"
    spellings = case_variants(email, RACERS)

    responses = await register_all(client, spellings)

    assert_one_winner(responses)
    assert await container.users.count() == 1
    assert await rows_with_email(container, email) == 1


async def test_parallel_logins_of_one_user_all_succeed_with_distinct_sessions(
    client: httpx.AsyncClient, container: Container
) -> None:
    user = await register(client)

    responses = await asyncio.gather(
        *(
            client.post("/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD})
            for _ in range(PARALLEL_LOGINS)
        )
    )

    assert [response.status_code for response in responses] == [200] * PARALLEL_LOGINS, [
        response.text for response in responses if response.status_code != 200
    ]
    pairs = [response.json() for response in responses]
    session_ids = {
        jwt.decode(pair["access_token"], options={"verify_signature": False})["sid"]
        for pair in pairs
    }
    assert len(session_ids) == PARALLEL_LOGINS
    assert len({pair["refresh_token"] for pair in pairs}) == PARALLEL_LOGINS
    async with container.database.read_engine.connect() as connection:
        result = await connection.execute(
            select(func.count())
            .select_from(AuthSession)
            .where(AuthSession.user_id == uuid.UUID(user["id"]))
        )
        assert result.scalar_one() == PARALLEL_LOGINS
    for pair in pairs:
        me = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        )
        assert me.status_code == 200
        assert me.json()["id"] == user["id"]
