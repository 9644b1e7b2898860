"""The first end-to-end path: register, log in, read yourself."""

from __future__ import annotations

import httpx

from tests.factories import account


async def test_registered_user_can_log_in_and_read_themself(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    response = await client.get("/api/v1/users/me", headers=ada.headers)
    assert response.status_code == 200
    assert response.json()["email"] == ada.email
