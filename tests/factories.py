"""Small builders for test data, through the public API wherever possible."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from accounts.bootstrap import Container

PASSWORD = "correct horse battery staple"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


@dataclass
class Account:
    """A registered user with a live session."""

    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(
    client: httpx.AsyncClient,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    name: str = "Test User",
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/users", json={"email": email or unique_email(), "password": password, "name": name}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def account(
    client: httpx.AsyncClient, *, email: str | None = None, password: str = PASSWORD
) -> Account:
    """Register a user and log them in."""
    user = await register(client, email=email, password=password)
    tokens = await login(client, user["email"], password)
    return Account(
        id=user["id"],
        email=user["email"],
        password=password,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


async def superuser(
    client: httpx.AsyncClient, container: Container, *, password: str = PASSWORD
) -> Account:
    """Create a superuser the way an operator does (the service, as the CLI calls it)."""
    email = unique_email("admin")
    user = await container.users.create(email, password, "Admin", is_superuser=True)
    tokens = await login(client, email, password)
    return Account(
        id=str(user.id),
        email=email,
        password=password,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


def full_width(text: str) -> str:
    """``text`` in full-width forms (U+FF01-FF5E), which NFKC maps back to ASCII."""
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)
