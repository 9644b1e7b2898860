"""The schema: queries and mutations, each a thin call into a service.

Each service call opens its own unit of work, so resolvers that GraphQL runs
concurrently never share a database session.
"""

from __future__ import annotations

import uuid
from functools import partial

import strawberry
import strawberry.tools
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.types import ExecutionContext, Info

from accounts.domain.errors import FieldError, InvalidInput
from accounts.domain.ids import parse_id
from accounts.domain.pagination import UserSort
from accounts.http.graphql.context import GraphQLContext
from accounts.http.graphql.documents import OperationChoice, depth_rule
from accounts.http.graphql.errors import DomainErrorExtension
from accounts.http.graphql.types import (
    AuditEvent,
    AuditEventPage,
    PageInfo,
    Session,
    TokenPair,
    UpdateUserInput,
    User,
    UserConnection,
    UserEdge,
)
from accounts.services.users import MAX_PAGE_SIZE, ListQuery, UserChanges, cursor_for

MAX_DEPTH = 10
# Introspection is not held to MAX_DEPTH (the standard introspection query, which
# GraphiQL and client generators send, is 14 deep), but to this: room for tools that
# ask for a few more levels of ofType, none for a hundred of them.
MAX_INTROSPECTION_DEPTH = 20
DEFAULT_PAGE_SIZE = 20
MAX_ALIASES = 30
MAX_TOKENS = 2000

GraphQLInfo = Info[GraphQLContext, None]


def _user_id(value: strawberry.ID, field: str = "id") -> uuid.UUID:
    try:
        return parse_id(str(value))
    except ValueError:
        raise InvalidInput(
            f"{field} is not a valid id",
            [FieldError(("args", field), "is not a valid UUID", "uuid_parsing")],
        ) from None


@strawberry.type
class Query:
    @strawberry.field(description="The caller.")
    async def me(self, info: GraphQLInfo) -> User:
        return User.of((await info.context.principal()).user)

    @strawberry.field(description="A user, or null when absent or not the caller's to see.")
    async def user(self, info: GraphQLInfo, id: strawberry.ID) -> User | None:
        row = await info.context.user_loader.load(_user_id(id))
        return User.of(row) if row is not None else None

    @strawberry.field(description="Users, newest first (superusers only).")
    async def users(
        self,
        info: GraphQLInfo,
        first: int | None = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        query: str | None = None,
        is_active: bool | None = None,
    ) -> UserConnection:
        first = DEFAULT_PAGE_SIZE if first is None else first
        if not 1 <= first <= MAX_PAGE_SIZE:
            raise InvalidInput(
                f"first must be between 1 and {MAX_PAGE_SIZE}",
                [FieldError(("args", "first"), f"must be 1-{MAX_PAGE_SIZE}", "value_error")],
            )
        principal = await info.context.principal()
        sort = UserSort.CREATED_AT_DESC
        page = await info.context.container.users.list(
            principal.user,
            ListQuery(query=query, is_active=is_active, sort=sort, cursor=after, limit=first),
        )
        edges = [UserEdge(cursor=cursor_for(row, sort), node=User.of(row)) for row in page.items]
        return UserConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.next_cursor is not None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            total_count=page.total,
        )

    @strawberry.field(description="The caller's live sessions, the current one marked.")
    async def sessions(self, info: GraphQLInfo) -> list[Session]:
        principal = await info.context.principal()
        return [Session.of(view) for view in await info.context.container.sessions.list(principal)]

    @strawberry.field(description="Audit events, newest first (superusers only).")
    async def audit_events(
        self,
        info: GraphQLInfo,
        first: int | None = 50,
        after: str | None = None,
        user_id: strawberry.ID | None = None,
        type: str | None = None,
    ) -> AuditEventPage:
        principal = await info.context.principal()
        page = await info.context.container.audit.list(
            principal.user,
            user_id=_user_id(user_id, "userId") if user_id is not None else None,
            type_=type,
            cursor=after,
            limit=50 if first is None else first,
        )
        return AuditEventPage(
            items=[AuditEvent.of(row) for row in page.items], next_cursor=page.next_cursor
        )


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Register a new account.")
    async def register(self, info: GraphQLInfo, email: str, password: str, name: str) -> User:
        context = info.context
        user = await context.container.users.register(email, password, name, client=context.client)
        return User.of(user)

    @strawberry.mutation(description="Log in: a new session's token pair.")
    async def login(self, info: GraphQLInfo, email: str, password: str) -> TokenPair:
        context = info.context
        return TokenPair.of(await context.container.auth.login(email, password, context.client))

    @strawberry.mutation(description="Spend a refresh token for a new pair.")
    async def refresh(self, info: GraphQLInfo, refresh_token: str) -> TokenPair:
        context = info.context
        return TokenPair.of(await context.container.auth.refresh(refresh_token, context.client))

    @strawberry.mutation(description="End the session the refresh token belongs to.")
    async def logout(self, info: GraphQLInfo, refresh_token: str) -> bool:
        await info.context.container.auth.logout(refresh_token, info.context.client)
        return True

    @strawberry.mutation(description="Change a user (is_active, is_superuser: superusers only).")
    async def update_user(
        self, info: GraphQLInfo, id: strawberry.ID, input: UpdateUserInput
    ) -> User:
        principal = await info.context.principal()
        changes = UserChanges(
            name=input.name,
            email=input.email,
            is_active=input.is_active,
            is_superuser=input.is_superuser,
        )
        row = await info.context.container.users.update(
            principal.user, _user_id(id), changes, client=principal.client
        )
        return User.of(row)

    @strawberry.mutation(description="Erase an account with its sessions.")
    async def delete_user(self, info: GraphQLInfo, id: strawberry.ID) -> bool:
        principal = await info.context.principal()
        await info.context.container.users.delete(
            principal.user, _user_id(id), client=principal.client
        )
        return True

    @strawberry.mutation(description="Change the caller's password; ends their other sessions.")
    async def change_password(
        self, info: GraphQLInfo, current_password: str, new_password: str
    ) -> bool:
        principal = await info.context.principal()
        await info.context.container.users.change_password(
            principal, current_password, new_password
        )
        return True


# The depth and alias limits as validation rules built once. Strawberry's
# QueryDepthLimiter and MaxAliasesLimiter build a new rule class for every operation,
# and ValidationCache keys on the rules: with those, every validation would miss.
LIMIT_RULES = (depth_rule(MAX_DEPTH, MAX_INTROSPECTION_DEPTH), max_aliases_rule(MAX_ALIASES))
# Distinct documents whose validation is remembered; bounded, so that a client
# sending endless unique queries only churns the caches.
DOCUMENT_CACHE_SIZE = 256


class OperationLimits(AddValidationRules):
    def __init__(self) -> None:
        super().__init__(list(LIMIT_RULES))


class AccountsSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Expected errors (domain, validation) are answers, not incidents; the
        # unexpected ones are logged once, with their trace, by DomainErrorExtension.
        return None


@strawberry.type
class LifecycleMutation:
    @strawberry.mutation(description="Email the caller a link that verifies their address.")
    async def request_email_verification(self, info: GraphQLInfo) -> bool:
        principal = await info.context.principal()
        await info.context.container.lifecycle.request_email_verification(principal)
        return True

    @strawberry.mutation(description="Verify an address with the token from the emailed link.")
    async def confirm_email(self, info: GraphQLInfo, token: str) -> User:
        context = info.context
        return User.of(await context.container.lifecycle.confirm_email(token, context.client))

    @strawberry.mutation(
        description="Email a password-reset link; true whether or not the account exists."
    )
    async def request_password_reset(self, info: GraphQLInfo, email: str) -> bool:
        container = info.context.container
        await container.lifecycle.accept_password_reset(email, info.context.client)
        # As in REST: answer first, so the answer cannot tell whether the account exists.
        container.jobs.spawn(
            container.lifecycle.request_password_reset(email), name="password-reset-request"
        )
        return True

    @strawberry.mutation(description="Set a new password from a reset link; ends every session.")
    async def reset_password(self, info: GraphQLInfo, token: str, new_password: str) -> bool:
        context = info.context
        await context.container.lifecycle.reset_password(token, new_password, context.client)
        return True

    @strawberry.mutation(description="End one of the caller's sessions.")
    async def revoke_session(self, info: GraphQLInfo, id: strawberry.ID) -> bool:
        principal = await info.context.principal()
        await info.context.container.sessions.revoke(principal, _user_id(id))
        return True


def build_schema() -> strawberry.Schema:
    return AccountsSchema(
        query=Query,
        mutation=strawberry.tools.merge_types("Mutation", (Mutation, LifecycleMutation)),
        extensions=[
            # Factories, not instances: Strawberry makes one per operation.
            partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
            OperationChoice,
            OperationLimits,
            # A client repeats the same few documents: validate each once. (Not
            # ParserCache: its syntax errors bypass DomainErrorExtension's codes.)
            partial(ValidationCache, maxsize=DOCUMENT_CACHE_SIZE),
            DomainErrorExtension,
        ],
    )
