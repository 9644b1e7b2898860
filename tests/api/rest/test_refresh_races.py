"""A refresh and the deletion of its user at the same moment, on SQLite and PostgreSQL.

Deleting a user deletes its sessions and then their tokens (ON DELETE CASCADE). A
refresh that spent its token before locking its session, while a deletion got between
the two, used to deadlock with it on PostgreSQL: after a second one of them was
aborted, and a refresh so aborted answered 500.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from accounts.bootstrap import Container
from accounts.db.repositories.refresh_tokens import RefreshTokenRepository
from tests.factories import login, register
from tests.lock_waits import until_a_statement_waits

REFRESH_URL = "/api/v1/auth/refresh"


async def test_a_user_deleted_while_their_token_is_refreshed_ends_both_cleanly(
    client: httpx.AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await register(client)
    user_id = uuid.UUID(user["id"])
    pair = await login(client, user["email"])

    async def delete_user() -> None:
        async with container.uow(write=True) as uow:
            assert await uow.users.delete(user_id)
            await uow.commit()

    deleting: list[asyncio.Task[None]] = []
    spend = RefreshTokenRepository.spend

    async def spend_then_let_a_deletion_begin(self: RefreshTokenRepository, *args: Any) -> bool:
        spent = await spend(self, *args)
        # The deletion begins while the refresh's transaction is open, and gets as
        # far as the first row the refresh holds.
        deleting.append(asyncio.create_task(delete_user()))
        await until_a_statement_waits(container, "DELETE FROM users")
        return spent

    monkeypatch.setattr(RefreshTokenRepository, "spend", spend_then_let_a_deletion_begin)
    response = await client.post(REFRESH_URL, json={"refresh_token": pair["refresh_token"]})
    monkeypatch.undo()
    await deleting[0]

    # The refresh was first: it succeeds, and its new tokens end with the user.
    assert response.status_code == 200, response.text
    async with container.uow() as uow:
        assert await uow.users.get(user_id) is None
    again = await client.post(REFRESH_URL, json={"refresh_token": response.json()["refresh_token"]})
    assert again.status_code == 401, again.text


async def test_a_refresh_that_waits_for_a_deletion_in_progress_is_refused_as_an_unknown_token(
    client: httpx.AsyncClient, container: Container
) -> None:
    user = await register(client)
    user_id = uuid.UUID(user["id"])
    pair = await login(client, user["email"])

    # The deletion has taken the user's sessions (and with them their tokens) but not
    # committed when the refresh comes to lock its session. The token the refresh
    # read is gone once it gets the lock: that is an unknown token, not a reused one,
    # and it must not raise a reuse alarm.
    async with container.uow(write=True) as uow:
        assert await uow.users.delete(user_id)
        refreshing = asyncio.create_task(
            client.post(REFRESH_URL, json={"refresh_token": pair["refresh_token"]})
        )
        await until_a_statement_waits(container, "SELECT sessions.")
        await uow.commit()
    response = await refreshing

    assert response.status_code == 401, response.text
    assert response.json()["detail"] == "Invalid refresh token."
    async with container.uow() as uow:
        reuse_alarms = await uow.audit.list(
            user_id=None, type_="session.refresh_reused", before=None, limit=50
        )
    assert list(reuse_alarms) == []
