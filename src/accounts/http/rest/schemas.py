"""Request and response bodies of the REST API.

Requests forbid unknown fields (no silent mass assignment) and run the same domain
rules the services apply, so a bad value is a 422 naming the field before any work.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from pydantic_core import PydanticCustomError

from accounts.domain.ids import parse_id
from accounts.domain.users import (
    EMAIL_MAX_LENGTH,
    NAME_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    check_password,
    normalize_email,
    normalize_name,
)

Email = Annotated[
    str,
    Field(max_length=EMAIL_MAX_LENGTH, json_schema_extra={"format": "email"}),
    AfterValidator(normalize_email),
]
# Documented as the rule really is (1-100 characters, no control characters, not
# blank); the raw input may carry surrounding spaces, which are trimmed.
Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1000,
        json_schema_extra={
            "maxLength": NAME_MAX_LENGTH,
            "pattern": r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        },
    ),
    AfterValidator(normalize_name),
]
NewPassword = Annotated[
    str,
    Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH),
    AfterValidator(check_password),
]
# A password being checked, not set: only bounded, so it is never hashed when huge.
GivenPassword = Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)]
OpaqueToken = Annotated[str, Field(min_length=1, max_length=512)]
# A refresh token as presented: one longer than any we issue (an access token sent in
# its place, say) is not ours, a 401 from the service rather than a 422 here.
PresentedRefreshToken = Annotated[str, Field(min_length=1, max_length=8192)]


def _canonical_id(value: object) -> object:
    if isinstance(value, str):
        try:
            return parse_id(value)
        except ValueError:
            raise PydanticCustomError(
                "uuid_parsing", "Input should be a UUID in canonical hyphenated form"
            ) from None
    return value


# An id in a path or a query: only the canonical spelling (domain/ids.py says why).
ResourceId = Annotated[uuid.UUID, BeforeValidator(_canonical_id)]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserCreate(RequestModel):
    email: Email
    password: NewPassword
    name: Name


class SelfUpdate(RequestModel):
    """What a user may change about themself. An absent or null field is left as is."""

    name: Name | None = None
    email: Email | None = None


class UserUpdate(SelfUpdate):
    """What may change about a user; is_active and is_superuser are for superusers."""

    # Strict: lax mode would take "false", "no", "off" and 0 for false, and a typo in a
    # client would deactivate or demote an account instead of being refused.
    is_active: StrictBool | None = None
    is_superuser: StrictBool | None = None


class PasswordChange(RequestModel):
    current_password: GivenPassword
    new_password: NewPassword


# Text the service refuses anywhere (control characters, lone surrogates), documented.
# (Lone surrogates are refused too, by the validators: the regex engine cannot name them.)
PLAIN_TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
LooseEmail = Annotated[str, Field(min_length=1, max_length=320, pattern=PLAIN_TEXT_PATTERN)]


class LoginRequest(RequestModel):
    email: LooseEmail
    password: GivenPassword


class RefreshRequest(RequestModel):
    refresh_token: PresentedRefreshToken


class OneTimeTokenBody(RequestModel):
    token: OpaqueToken


class PasswordResetRequest(RequestModel):
    email: LooseEmail


class PasswordResetConfirm(RequestModel):
    token: OpaqueToken
    new_password: NewPassword


class SessionRead(BaseModel):
    id: uuid.UUID
    created_at: dt.datetime
    last_used_at: dt.datetime
    expires_at: dt.datetime
    user_agent: str | None
    ip: str | None
    current: bool


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    type: str
    actor_id: uuid.UUID | None
    user_id: uuid.UUID | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any] | None
    created_at: dt.datetime


class AuditEventList(BaseModel):
    items: list[AuditEventRead]
    next_cursor: str | None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    is_active: bool
    is_superuser: bool
    email_verified: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class UserList(BaseModel):
    items: list[UserRead]
    total: int
    skip: int
    limit: int
    next_cursor: str | None


class TokenPairRead(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int
    refresh_token: str


class ProblemRead(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    request_id: str


class FieldErrorRead(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationProblemRead(ProblemRead):
    errors: list[FieldErrorRead]


def problems(*statuses: int, body: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problem statuses a route can answer.

    Every route can answer 400 (a body that is not parseable) and 422; routes that
    take a body can answer 413.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, 400, 422, *((413,) if body else ())}):
        model = ValidationProblemRead if status == 422 else ProblemRead
        responses[status] = {
            "model": model,
            "content": {"application/problem+json": {"schema": model.model_json_schema()}},
        }
    return responses
