"""Races, on SQLite and PostgreSQL, with requests sent at once over the ASGI client.

* registrations of one email in different letter cases: exactly one account;
* ten refreshes of one refresh token: at most one new pair, and the replays end the
  session (a spent token presented again is theft);
* two superusers demoting (or deactivating) each other at once: one superuser stays;
* parallel PATCHes with the same If-Match: exactly one wins, the rest get 412;
* a registration read at once through another connection: the 201 means committed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from accounts.bootstrap import Container
from accounts.models import AuditEvent, AuthSession, RefreshToken, User
from accounts.settings import Settings
from tests.conftest import make_settings
from tests.factories import PASSWORD, Account, account, bearer, login, register, superuser

PARALLEL = 10
ROUNDS = 3


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Rate limits would answer some of the racers first: not what is under test.
    return make_settings(database_url, rate_limits="off")


def statuses(responses: list[httpx.Response]) -> list[int]:
    return sorted(response.status_code for response in responses)


def assert_no_server_errors(responses: list[httpx.Response]) -> None:
    assert all(response.status_code < 500 for response in responses), [
        (response.status_code, response.text) for response in responses
    ]


async def count(container: Container, statement: Select[tuple[int]]) -> int:
    async with container.database.read_engine.connect() as connection:
        return int((await connection.execute(statement)).scalar_one())


# --- Registration with case variants of one email -------------------------------------------


def case_variants(email: str, count_: int) -> list[str]:
    letters = [index for index, char in enumerate(email) if char.isalpha()]
    variants = []
    for number in range(count_):
        chars = list(email)
        for bit, index in enumerate(letters):
            if number >> bit & 1:
                chars[index] = chars[index].upper()
        variants.append("".join(chars))
    # Whitespace around the address is trimmed: one more spelling of the same account.
    variants[-1] = f"  {variants[-1]}\t"
    assert len(set(variants)) == count_
    return variants


async def test_registrations_of_case_variants_of_one_email_create_one_account(
    client: httpx.AsyncClient, container: Container
) -> None:
    email = f"race-{uuid.uuid4().hex[:8]}@example.com"

    responses = await asyncio.gather(
        *(
            client.post(
                "/api/v1/users",
                json={"email": variant, "password": PASSWORD, "name": f"Racer {number}"},
            )
            for number, variant in enumerate(case_variants(email, PARALLEL))
        )
    )

    assert_no_server_errors(responses)
    assert statuses(responses) == [201] + [400] * (PARALLEL - 1), [r.text for r in responses]
    for response in responses:
        if response.status_code == 400:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["detail"] == "Email already registered"
    assert (
        await count(
            container, select(func.count()).select_from(User).where(User.email_key == email)
        )
        == 1
    )
    assert (
        await count(
            container,
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.type == "user.registered"),
        )
        == 1
    )
    winner = next(response for response in responses if response.status_code == 201)
    await login(client, email.upper())  # any spelling logs the one account in
    assert (await login(client, email))["access_token"]
    assert winner.json()["email"].lower() == email


# --- Ten refreshes of one token ----------------------------------------------------------------


async def test_parallel_refreshes_of_one_token_let_at_most_one_through(
    client: httpx.AsyncClient, container: Container
) -> None:
    for _ in range(ROUNDS):
        user = await account(client)

        responses = await asyncio.gather(
            *(
                client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
                for _ in range(PARALLEL)
            )
        )

        assert_no_server_errors(responses)
        codes = statuses(responses)
        assert codes.count(200) <= 1, codes
        assert set(codes) <= {200, 401}, codes
        for response in responses:
            if response.status_code == 401:
                assert response.headers["www-authenticate"] == "Bearer"
        session_id = await session_of(container, user)
        # At most one new refresh token was issued in the session...
        assert (
            await count(
                container,
                select(func.count())
                .select_from(RefreshToken)
                .where(RefreshToken.session_id == session_id),
            )
            <= 2
        )
        # ... and the replays of the spent token ended the session, whoever won.
        async with container.database.read_engine.connect() as connection:
            revoked_at = (
                await connection.execute(
                    select(AuthSession.revoked_at).where(AuthSession.id == session_id)
                )
            ).scalar_one()
        assert revoked_at is not None
        for response in responses:
            if response.status_code == 200:
                pair = response.json()
                me = await client.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
                assert me.status_code == 401, me.text
                again = await client.post(
                    "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
                )
                assert again.status_code == 401, again.text
        me = await client.get("/api/v1/users/me", headers=user.headers)
        assert me.status_code == 401, me.text


async def session_of(container: Container, user: Account) -> uuid.UUID:
    async with container.database.read_engine.connect() as connection:
        return (
            await connection.execute(
                select(AuthSession.id).where(AuthSession.user_id == uuid.UUID(user.id))
            )
        ).scalar_one()


# --- Two superusers demoting each other ---------------------------------------------------------


@pytest.mark.parametrize(
    "change", [{"is_superuser": False}, {"is_active": False}], ids=["demote", "deactivate"]
)
async def test_two_superusers_demoting_each_other_leave_one_superuser(
    client: httpx.AsyncClient, container: Container, change: dict[str, bool]
) -> None:
    for _ in range(ROUNDS):
        await remove_other_superusers(client, container)
        first = await superuser(client, container)
        second = await superuser(client, container)
        await remove_other_superusers(client, container, keep={first.id, second.id})

        responses = await asyncio.gather(
            client.patch(f"/api/v1/users/{second.id}", json=change, headers=first.headers),
            client.patch(f"/api/v1/users/{first.id}", json=change, headers=second.headers),
        )

        assert_no_server_errors(responses)
        codes = statuses(responses)
        # One wins; the other is refused, as the last superuser (409) or, when its
        # caller was already demoted, as no superuser at all: 404 for a PATCH of another
        # user (existence is not revealed to non-superusers), 403, or no session (401).
        assert codes[0] == 200, [r.text for r in responses]
        assert codes[1] in {401, 403, 404, 409}, [r.text for r in responses]
        assert await active_superusers(container) == 1


async def active_superusers(container: Container) -> int:
    return await count(
        container,
        select(func.count())
        .select_from(User)
        .where(User.is_superuser.is_(True), User.is_active.is_(True)),
    )


async def remove_other_superusers(
    client: httpx.AsyncClient, container: Container, keep: set[str] | None = None
) -> None:
    """Leave only ``keep`` as active superusers (rounds start from a known state)."""
    async with container.database.read_engine.connect() as connection:
        ids = (
            await connection.execute(
                select(User.id).where(User.is_superuser.is_(True), User.is_active.is_(True))
            )
        ).scalars()
        others = [user_id for user_id in ids if str(user_id) not in (keep or set())]
    if not others:
        return
    admin = await superuser(client, container)
    for user_id in others:
        response = await client.delete(f"/api/v1/users/{user_id}", headers=admin.headers)
        assert response.status_code == 204, response.text
    if keep:
        response = await client.delete("/api/v1/users/me", headers=admin.headers)
        assert response.status_code == 204, response.text


# --- Parallel PATCH with the same If-Match -------------------------------------------------


async def test_parallel_patches_with_one_if_match_let_exactly_one_win(
    client: httpx.AsyncClient, container: Container
) -> None:
    for _ in range(ROUNDS):
        user = await account(client)
        read = await client.get(f"/api/v1/users/{user.id}", headers=user.headers)
        etag = read.headers["etag"]
        names = [f"Writer {number}" for number in range(PARALLEL)]

        responses = await asyncio.gather(
            *(
                client.patch(
                    f"/api/v1/users/{user.id}",
                    json={"name": name},
                    headers={**user.headers, "If-Match": etag},
                )
                for name in names
            )
        )

        assert_no_server_errors(responses)
        assert statuses(responses) == [200] + [412] * (PARALLEL - 1), [r.text for r in responses]
        (winner,) = [response for response in responses if response.status_code == 200]
        assert winner.headers["etag"] != etag
        final = await client.get(f"/api/v1/users/{user.id}", headers=user.headers)
        assert final.json()["name"] == winner.json()["name"]
        assert final.headers["etag"] == winner.headers["etag"]
        assert int(final.headers["etag"].strip('"')) == int(etag.strip('"')) + 1
        assert (
            await count(
                container,
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.type == "user.updated", AuditEvent.user_id == uuid.UUID(user.id)),
            )
            == 1
        )


# --- Register, then read at once on another connection -------------------------------------


@pytest.fixture
async def other_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine of the test's own, sharing nothing with the app's pools."""
    engine = create_async_engine(settings.database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_a_201_registration_is_committed_for_every_other_connection(
    client: httpx.AsyncClient, other_engine: AsyncEngine
) -> None:
    async def register_and_read(number: int) -> tuple[str, str | None]:
        email = f"committed-{number}-{uuid.uuid4().hex[:8]}@example.com"
        user = await register(client, email=email)
        # At once, on a connection the app never touched.
        async with other_engine.connect() as connection:
            found = (
                await connection.execute(select(User.email).where(User.id == uuid.UUID(user["id"])))
            ).scalar_one_or_none()
        return email, found

    results = await asyncio.gather(*(register_and_read(number) for number in range(PARALLEL * 2)))

    for email, found in results:
        assert found == email, f"{email} answered 201 but another connection saw {found!r}"
