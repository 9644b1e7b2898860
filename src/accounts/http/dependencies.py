"""Typed dependencies: how routes reach the services the lifespan built, and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from accounts.bootstrap import Container
from accounts.domain.errors import NotAuthenticated
from accounts.services.audit import AuditService
from accounts.services.auth import AuthService, ClientInfo, Principal
from accounts.services.lifecycle import LifecycleService
from accounts.services.sessions import SessionService
from accounts.services.users import UserService

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a path, not a secret

# auto_error=False: a missing token must become our 401 problem, not FastAPI's.
bearer_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def get_user_service(container: ContainerDep) -> UserService:
    return container.users


def get_auth_service(container: ContainerDep) -> AuthService:
    return container.auth


def get_session_service(container: ContainerDep) -> SessionService:
    return container.sessions


def get_lifecycle_service(container: ContainerDep) -> LifecycleService:
    return container.lifecycle


def get_audit_service(container: ContainerDep) -> AuditService:
    return container.audit


UserServiceDep = Annotated[UserService, Depends(get_user_service)]
SessionServiceDep = Annotated[SessionService, Depends(get_session_service)]
LifecycleServiceDep = Annotated[LifecycleService, Depends(get_lifecycle_service)]
AuditServiceDep = Annotated[AuditService, Depends(get_audit_service)]
AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
BearerTokenDep = Annotated[str | None, Depends(bearer_scheme)]


def get_client_info(request: Request) -> ClientInfo:
    return ClientInfo(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


ClientInfoDep = Annotated[ClientInfo, Depends(get_client_info)]


async def get_principal(
    request: Request, auth: AuthServiceDep, token: BearerTokenDep, client: ClientInfoDep
) -> Principal:
    if not token:
        raise NotAuthenticated()
    principal = await auth.authenticate(token, client)
    request.state.user_id = str(principal.user.id)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
