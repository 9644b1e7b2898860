"""Domain errors as GraphQL errors.

The same stable codes REST maps to problem details map here to
``extensions.code``. GraphQL's own parse and validation errors (including the depth
and size limits) are ``BAD_USER_INPUT``; anything unexpected is masked to a bare
``INTERNAL_SERVER_ERROR`` with no message, trace or SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import structlog
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.utils.str_converters import to_camel_case

from accounts.domain.errors import DomainError, InvalidInput, RateLimited

logger = structlog.get_logger("accounts.graphql")

CODES: dict[str, str] = {
    "invalid_input": "BAD_USER_INPUT",
    "invalid_cursor": "BAD_USER_INPUT",
    "incorrect_password": "BAD_USER_INPUT",
    "invalid_token": "BAD_USER_INPUT",
    "not_authenticated": "UNAUTHENTICATED",
    "invalid_credentials": "UNAUTHENTICATED",
    "forbidden": "FORBIDDEN",
    "inactive_user": "FORBIDDEN",
    "registration_closed": "FORBIDDEN",
    "not_found": "NOT_FOUND",
    "email_taken": "EMAIL_TAKEN",
    "conflict": "CONFLICT",
    "last_superuser": "CONFLICT",
    "precondition_failed": "CONFLICT",
    "rate_limited": "RATE_LIMITED",
    "unavailable": "SERVICE_UNAVAILABLE",
}
INTERNAL = "INTERNAL_SERVER_ERROR"
BAD_USER_INPUT = "BAD_USER_INPUT"


def _domain_extensions(exc: DomainError) -> dict[str, Any]:
    extensions: dict[str, Any] = {"code": CODES.get(exc.code, BAD_USER_INPUT)}
    if isinstance(exc, InvalidInput) and exc.errors:
        # Named as the GraphQL argument is (newPassword), not as the service calls it.
        extensions["field"] = to_camel_case(str(exc.errors[0].loc[-1]))
        extensions["errors"] = [
            {"field": to_camel_case(str(error.loc[-1])), "message": error.msg}
            for error in exc.errors
        ]
    if isinstance(exc, RateLimited):
        extensions["retryAfter"] = exc.retry_after
    return extensions


def translate(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, DomainError):
        message, extensions = original.message, _domain_extensions(original)
    elif original is None or isinstance(original, GraphQLError):
        # Raised by graphql-core itself (syntax, validation, variable and argument
        # coercion, which wraps one GraphQLError in another): its message describes
        # the query, never our internals.
        message = error.message
        extensions = {"code": (error.extensions or {}).get("code", BAD_USER_INPUT)}
    else:
        logger.error(
            "unexpected error in a resolver",
            path=error.path,
            exc_info=(type(original), original, original.__traceback__),
        )
        message, extensions = "Internal server error.", {"code": INTERNAL}
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


class DomainErrorExtension(SchemaExtension):
    """Rewrites every error of an operation's result (see the module docstring)."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = [translate(error) for error in errors]
