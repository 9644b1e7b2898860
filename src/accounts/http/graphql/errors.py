"""Domain errors as GraphQL errors.

The same stable codes REST maps to problem details map here to
``extensions.code``. An invalid input is named as the GraphQL argument is, in
``extensions.field`` and in the message (services name it as REST does). GraphQL's
own parse and validation errors (including the depth and size limits) are
``BAD_USER_INPUT``; anything unexpected is masked to a bare ``INTERNAL_SERVER_ERROR``
with no message, trace or SQL.
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


# Services name an input as REST does (the body field or query parameter); a GraphQL
# client must see the argument it sent. Where the names differ by more than case
# (refresh_token, refreshToken), this says what the argument is called.
ARGUMENT_NAMES: dict[str, str] = {"q": "query", "cursor": "after", "limit": "first"}


def argument_name(service_name: str | int) -> str:
    name = str(service_name)
    return ARGUMENT_NAMES.get(name) or to_camel_case(name)


def _invalid_input_message(exc: InvalidInput) -> str:
    """The service's message, naming the argument rather than the service's field.

    Services put the field's name first ("refresh_token must be 1-512 characters");
    where a message does not ("The cursor is malformed ..."), the argument goes in
    front of it, so that the message always begins with the argument's name.
    """
    name = exc.errors[0].loc[-1]
    head, _, rest = exc.message.partition(" ")
    if head == str(name):
        return f"{argument_name(name)} {rest}"
    return f"{argument_name(name)}: {exc.message}"


def _domain_message(exc: DomainError) -> str:
    if isinstance(exc, InvalidInput) and exc.errors:
        return _invalid_input_message(exc)
    return exc.message


def _domain_extensions(exc: DomainError) -> dict[str, Any]:
    extensions: dict[str, Any] = {"code": CODES.get(exc.code, BAD_USER_INPUT)}
    if isinstance(exc, InvalidInput) and exc.errors:
        extensions["field"] = argument_name(exc.errors[0].loc[-1])
        extensions["errors"] = [
            {"field": argument_name(error.loc[-1]), "message": error.msg} for error in exc.errors
        ]
    if isinstance(exc, RateLimited):
        extensions["retryAfter"] = exc.retry_after
    return extensions


def translate(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, DomainError):
        message, extensions = _domain_message(original), _domain_extensions(original)
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
