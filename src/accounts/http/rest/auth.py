"""``/api/v1/auth``: log in, refresh, log out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Form, Response, status

from accounts.domain.errors import NotAuthenticated
from accounts.http.dependencies import AuthServiceDep, BearerTokenDep, ClientInfoDep
from accounts.http.rest.schemas import (
    PLAIN_TEXT_PATTERN,
    LoginRequest,
    RefreshRequest,
    TokenPairRead,
    problems,
)
from accounts.services.auth import TokenPair

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

# RFC 6749 §5.1: responses carrying tokens must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _pair(pair: TokenPair, response: Response) -> TokenPairRead:
    response.headers.update(NO_STORE)
    return TokenPairRead(
        access_token=pair.access_token,
        token_type=pair.token_type,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
    )


@router.post(
    "/token",
    response_model=TokenPairRead,
    responses=problems(401, 403),
    summary="Log in with the OAuth2 password grant (form: username = email)",
)
async def token(
    username: Annotated[str, Form(min_length=1, max_length=320, pattern=PLAIN_TEXT_PATTERN)],
    password: Annotated[str, Form(min_length=1, max_length=256)],
    auth: AuthServiceDep,
    client: ClientInfoDep,
    response: Response,
    grant_type: Annotated[str, Form(pattern="^password$")] = "password",
    scope: Annotated[str, Form(max_length=1024)] = "",
) -> TokenPairRead:
    # The OAuth2 password grant's form (RFC 6749 §4.3), as Swagger UI's Authorize
    # sends it, with the same bounds as the JSON login. As in FastAPI's own lenient
    # form, grant_type may be left out but, if given, must be "password": this
    # endpoint grants nothing else. scope, client_id and client_secret are ignored.
    return _pair(await auth.login(username, password, client), response)


@router.post(
    "/login",
    response_model=TokenPairRead,
    responses=problems(401, 403),
    summary="Log in with a JSON body",
)
async def login(
    body: LoginRequest, auth: AuthServiceDep, client: ClientInfoDep, response: Response
) -> TokenPairRead:
    return _pair(await auth.login(body.email, body.password, client), response)


@router.post(
    "/refresh",
    response_model=TokenPairRead,
    responses=problems(401),
    summary="Spend a refresh token for a new token pair",
)
async def refresh(
    body: RefreshRequest, auth: AuthServiceDep, client: ClientInfoDep, response: Response
) -> TokenPairRead:
    return _pair(await auth.refresh(body.refresh_token, client), response)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401),
    summary="End a session: the refresh token's, or else the bearer token's",
)
async def logout(
    auth: AuthServiceDep,
    token: BearerTokenDep,
    client: ClientInfoDep,
    body: Annotated[RefreshRequest | None, Body()] = None,
) -> Response:
    if body is not None:
        await auth.logout(body.refresh_token, client)
    elif token:
        await auth.logout_session(await auth.authenticate(token, client))
    else:
        raise NotAuthenticated()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
