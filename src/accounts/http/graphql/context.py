"""The per-request GraphQL context: the services, the caller, and DataLoaders."""

from __future__ import annotations

import asyncio
import uuid

from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from accounts.bootstrap import Container
from accounts.domain.errors import NotAuthenticated
from accounts.models import User
from accounts.services.auth import ClientInfo, Principal


class GraphQLContext(BaseContext):
    def __init__(self, container: Container, client: ClientInfo, token: str | None) -> None:
        super().__init__()
        self.container = container
        self.client = client
        self._token = token
        self._principal: Principal | None = None
        self._principal_lock = asyncio.Lock()
        self.user_loader: DataLoader[uuid.UUID, User | None] = DataLoader(self._load_users)

    async def principal(self) -> Principal:
        """The authenticated caller, checked once per request however many resolvers ask.

        Raises:
            NotAuthenticated: no bearer token, or one that does not check out.
        """
        async with self._principal_lock:
            if self._principal is None:
                if not self._token:
                    raise NotAuthenticated()
                self._principal = await self.container.auth.authenticate(self._token, self.client)
            return self._principal

    @property
    def token(self) -> str | None:
        return self._token

    async def _load_users(self, user_ids: list[uuid.UUID]) -> list[User | None]:
        # ``user(id:)`` under many aliases is one query, not one per alias.
        principal = await self.principal()
        return await self.container.users.get_many(principal.user, user_ids)
