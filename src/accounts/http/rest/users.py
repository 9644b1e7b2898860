"""``/api/v1/users``: registration, the caller's own account, and user administration."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from accounts.domain.pagination import CURSOR_MAX_LENGTH, UserSort
from accounts.http.dependencies import (
    ClientInfoDep,
    PrincipalDep,
    UserServiceDep,
    single_valued,
)
from accounts.http.rest.schemas import (
    PLAIN_TEXT_PATTERN,
    PasswordChange,
    ResourceId,
    SelfUpdate,
    UserCreate,
    UserList,
    UserRead,
    UserUpdate,
    problems,
)
from accounts.http.routing import CallerOnlyRoute
from accounts.models import User
from accounts.services.users import ListQuery, UserChanges

router = APIRouter(prefix="/api/v1/users", tags=["users"])

IfMatchHeader = Annotated[str | None, Header(alias="If-Match", max_length=1024)]


def etag_of(user: User) -> str:
    return f'"{user.version}"'


def parse_if_match(header: str | None) -> frozenset[int] | None:
    """The versions an If-Match header accepts; None when any version will do.

    Strong comparison (RFC 9110): a weak tag never matches, and neither does a
    tag we never issued, leaving an empty set that fails the precondition.
    """
    if header is None or header.strip() == "*":
        return None
    versions = set()
    for tag in header.split(","):
        tag = tag.strip()
        version = tag[1:-1]
        # ASCII digits only: str.isdigit() also takes "²", which int() refuses (a 500),
        # and a header decoded as latin-1 can carry it.
        if len(tag) >= 2 and tag[0] == tag[-1] == '"' and version.isascii() and version.isdigit():
            versions.add(int(version))
    return frozenset(versions)


def _read(user: User, response: Response) -> UserRead:
    response.headers["ETag"] = etag_of(user)
    return UserRead.model_validate(user)


def _user_response(user: User, status_code: int = 200) -> Response:
    """The user as JSON, serialised once by pydantic-core.

    Returning a Response skips FastAPI's second validation and serialisation of the
    returned model; ``response_model`` still documents the body.
    """
    return Response(
        UserRead.model_validate(user).model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        headers={"ETag": etag_of(user)},
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=problems(400, 403, 413),
    summary="Register a new account",
)
async def register(
    body: UserCreate, users: UserServiceDep, client: ClientInfoDep, response: Response
) -> UserRead:
    user = await users.register(body.email, body.password, body.name, client=client)
    response.headers["Location"] = f"{router.prefix}/{user.id}"
    return _read(user, response)


@router.get(
    "",
    dependencies=[single_valued("skip", "limit", "cursor", "q", "is_active", "sort")],
    response_model=UserList,
    responses=problems(401, 403),
    summary="List users (superusers only)",
)
async def list_users(
    principal: PrincipalDep,
    users: UserServiceDep,
    skip: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=CURSOR_MAX_LENGTH)] = None,
    q: Annotated[str | None, Query(max_length=254, pattern=PLAIN_TEXT_PATTERN)] = None,
    is_active: bool | None = None,
    sort: UserSort = UserSort.CREATED_AT_DESC,
) -> UserList:
    page = await users.list(
        principal.user,
        ListQuery(query=q, is_active=is_active, sort=sort, cursor=cursor, skip=skip, limit=limit),
    )
    return UserList(
        items=[UserRead.model_validate(user) for user in page.items],
        total=page.total,
        skip=page.skip,
        limit=page.limit,
        next_cursor=page.next_cursor,
    )


async def read_me(principal: PrincipalDep) -> Response:
    return _user_response(principal.user)


# The authenticated hot path: its route skips FastAPI's per-request dependency solving,
# whose one result here would be the principal (accounts/http/routing.py).
router.add_api_route(
    "/me",
    read_me,
    methods=["GET"],
    response_model=UserRead,
    responses=problems(401),
    summary="The caller",
    route_class_override=CallerOnlyRoute,
)


@router.patch(
    "/me", response_model=UserRead, responses=problems(400, 401, 412), summary="Update the caller"
)
async def update_me(
    body: SelfUpdate,
    principal: PrincipalDep,
    users: UserServiceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> UserRead:
    user = await users.update(
        principal.user,
        principal.user.id,
        UserChanges(name=body.name, email=body.email),
        if_match=parse_if_match(if_match),
        client=principal.client,
    )
    return _read(user, response)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401, 409, 412),
    summary="Delete the caller's account",
)
async def delete_me(
    principal: PrincipalDep, users: UserServiceDep, if_match: IfMatchHeader = None
) -> Response:
    await users.delete(
        principal.user,
        principal.user.id,
        if_match=parse_if_match(if_match),
        client=principal.client,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(400, 401),
    summary="Change the caller's password; ends every other session",
)
async def change_password(
    body: PasswordChange, principal: PrincipalDep, users: UserServiceDep
) -> Response:
    await users.change_password(principal, body.current_password, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{user_id}", response_model=UserRead, responses=problems(401, 404), summary="Read a user"
)
async def read_user(
    user_id: ResourceId, principal: PrincipalDep, users: UserServiceDep
) -> Response:
    return _user_response(await users.get(principal.user, user_id))


@router.patch(
    "/{user_id}",
    response_model=UserRead,
    responses=problems(400, 401, 403, 404, 409, 412),
    summary="Update a user",
)
async def update_user(
    user_id: ResourceId,
    body: UserUpdate,
    principal: PrincipalDep,
    users: UserServiceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> UserRead:
    user = await users.update(
        principal.user,
        user_id,
        UserChanges(
            name=body.name,
            email=body.email,
            is_active=body.is_active,
            is_superuser=body.is_superuser,
        ),
        if_match=parse_if_match(if_match),
        client=principal.client,
    )
    return _read(user, response)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401, 404, 409, 412),
    summary="Delete a user",
)
async def delete_user(
    user_id: ResourceId,
    principal: PrincipalDep,
    users: UserServiceDep,
    if_match: IfMatchHeader = None,
) -> Response:
    await users.delete(
        principal.user, user_id, if_match=parse_if_match(if_match), client=principal.client
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
