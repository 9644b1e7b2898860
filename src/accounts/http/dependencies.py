"""Typed dependencies: how routes reach the services the lifespan built, and the caller."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from accounts.bootstrap import Container
from accounts.domain.errors import FieldError, InvalidInput, NotAuthenticated
from accounts.services.audit import AuditService
from accounts.services.auth import AuthService, ClientInfo, Principal
from accounts.services.lifecycle import LifecycleService
from accounts.services.sessions import SessionService
from accounts.services.users import UserService

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a path, not a secret

# auto_error=False: a missing token must become our 401 problem, not FastAPI's.
bearer_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


# Dependencies are ``async def`` even when they do not await: FastAPI runs a plain
# ``def`` dependency in a worker thread, a hop that cost ~12% of an authenticated read.
async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_user_service(container: ContainerDep) -> UserService:
    return container.users


async def get_auth_service(container: ContainerDep) -> AuthService:
    return container.auth


async def get_session_service(container: ContainerDep) -> SessionService:
    return container.sessions


async def get_lifecycle_service(container: ContainerDep) -> LifecycleService:
    return container.lifecycle


async def get_audit_service(container: ContainerDep) -> AuditService:
    return container.audit


UserServiceDep = Annotated[UserService, Depends(get_user_service)]
SessionServiceDep = Annotated[SessionService, Depends(get_session_service)]
LifecycleServiceDep = Annotated[LifecycleService, Depends(get_lifecycle_service)]
AuditServiceDep = Annotated[AuditService, Depends(get_audit_service)]
AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
BearerTokenDep = Annotated[str | None, Depends(bearer_scheme)]


def client_ip(request: Request, trusted: Sequence[IPNetwork]) -> str | None:
    """The client's address: the socket peer, unless the peer is a trusted proxy.

    Behind trusted proxies, X-Forwarded-For is read from the right, skipping the
    proxies' own addresses; the first address that is not a trusted proxy is the
    client. Anything further left was written by the client and is not believed.
    """
    peer = request.client.host if request.client else None
    if peer is None or not trusted or not _in(peer, trusted):
        return peer
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        if not _in(hop, trusted):
            return hop if _is_ip(hop) else peer
    return peer


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _in(address: str, networks: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


async def get_client_info(request: Request, container: ContainerDep) -> ClientInfo:
    return ClientInfo(
        ip=client_ip(request, container.trusted_proxies),
        user_agent=request.headers.get("user-agent"),
    )


ClientInfoDep = Annotated[ClientInfo, Depends(get_client_info)]


def single_valued(*names: str) -> Any:
    """A dependency refusing a query parameter given more than once (422), rather than
    silently taking the last of ``?limit=1&limit=100``."""

    async def check(request: Request) -> None:
        errors = [
            FieldError(("query", name), "must be given at most once", "value_error")
            for name in names
            if len(request.query_params.getlist(name)) > 1
        ]
        if errors:
            raise InvalidInput("A query parameter was given more than once.", errors)

    return Depends(check)


class PrincipalScheme(OAuth2PasswordBearer):
    """The bearer scheme that also authenticates the caller, in one dependency.

    FastAPI documents it as the same OAuth2 password scheme as ``bearer_scheme``, but
    it runs on every authenticated request, and each level of dependencies costs:
    resolving the token and then the principal as two levels was ~5% of ``GET
    /users/me``. The container is read straight off the app for the same reason.
    """

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        token = await super().__call__(request)
        if not token:
            raise NotAuthenticated()
        container: Container = request.app.state.container
        client = ClientInfo(
            ip=client_ip(request, container.trusted_proxies),
            user_agent=request.headers.get("user-agent"),
        )
        principal = await container.auth.authenticate(token, client)
        request.state.user_id = str(principal.user.id)
        return principal


# The same scheme name as bearer_scheme: one security scheme in the OpenAPI document.
get_principal = PrincipalScheme(
    tokenUrl=TOKEN_URL, auto_error=False, scheme_name=type(bearer_scheme).__name__
)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
