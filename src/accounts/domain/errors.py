"""The domain error tree.

Services raise these; the edges (REST, GraphQL) map each stable ``code`` to their
own representation in one table each. No HTTP status lives here.

    DomainError
    ├── InvalidInput            invalid_input         a rule on a value was broken
    │   └── InvalidCursor       invalid_cursor        a pagination cursor did not decode
    ├── NotAuthenticated        not_authenticated     no, or no longer a valid, credential
    │   └── InvalidCredentials  invalid_credentials   wrong email or password
    ├── PermissionDenied        forbidden             authenticated, but not allowed
    │   ├── InactiveUser        inactive_user         the account is deactivated
    │   └── RegistrationClosed  registration_closed   self-service sign-up is off
    ├── NotFound                not_found             absent, or not visible to the caller
    ├── EmailTaken              email_taken           another account has that email
    ├── IncorrectPassword       incorrect_password    the current password did not match
    ├── InvalidOneTimeToken     invalid_token         an email link's token is bad, expired or used
    ├── Conflict                conflict              the change would break an invariant
    │   └── LastSuperuser       last_superuser        would leave no active superuser
    ├── PreconditionFailed      precondition_failed   If-Match did not match
    ├── RateLimited             rate_limited          too many attempts, retry later
    └── ServiceUnavailable      unavailable           a backing service did not answer
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule on one input field."""

    loc: tuple[str | int, ...]
    msg: str
    type: str


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    code: ClassVar[str] = "error"
    default_message: ClassVar[str] = "The request could not be completed."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidInput(DomainError):
    code = "invalid_input"
    default_message = "The input is not valid."

    def __init__(self, message: str | None = None, errors: list[FieldError] | None = None):
        super().__init__(message)
        self.errors = errors or []


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"
    default_message = "The cursor is malformed or belongs to another sort order."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message,
            [FieldError(("query", "cursor"), message or self.default_message, "value_error")],
        )


class NotAuthenticated(DomainError):
    code = "not_authenticated"
    default_message = "Not authenticated."


class InvalidCredentials(NotAuthenticated):
    code = "invalid_credentials"
    default_message = "Incorrect email or password"


class PermissionDenied(DomainError):
    code = "forbidden"
    default_message = "You are not allowed to do this."


class InactiveUser(PermissionDenied):
    code = "inactive_user"
    default_message = "This account is deactivated."


class RegistrationClosed(PermissionDenied):
    code = "registration_closed"
    default_message = "Registration is closed."


class NotFound(DomainError):
    code = "not_found"
    default_message = "Not found."


class EmailTaken(DomainError):
    code = "email_taken"
    default_message = "Email already registered"


class IncorrectPassword(DomainError):
    code = "incorrect_password"
    default_message = "Current password is incorrect"


class InvalidOneTimeToken(DomainError):
    """An email-verification or password-reset token that cannot be used.

    ``reason`` says why, so that a page can tell the user what happened.
    """

    code = "invalid_token"
    MESSAGES: ClassVar[dict[str, str]] = {
        "invalid": "The link is not valid.",
        "expired": "The link has expired.",
        "used": "The link has already been used.",
    }

    def __init__(self, reason: str = "invalid") -> None:
        self.reason = reason if reason in self.MESSAGES else "invalid"
        super().__init__(self.MESSAGES[self.reason])


class Conflict(DomainError):
    code = "conflict"
    default_message = "The change conflicts with the current state."


class LastSuperuser(Conflict):
    code = "last_superuser"
    default_message = "The last active superuser cannot be demoted, deactivated or deleted."


class PreconditionFailed(DomainError):
    code = "precondition_failed"
    default_message = "The resource has changed since it was read (If-Match does not match)."


class RateLimited(DomainError):
    code = "rate_limited"
    default_message = "Too many requests."

    def __init__(self, retry_after: int, message: str | None = None, *, limit: int = 0) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
        self.limit = limit


class ServiceUnavailable(DomainError):
    code = "unavailable"
    default_message = "The service is temporarily unavailable; try again shortly."
