"""Checks the fuzz runs add to schemathesis' own, from the contract (docs: /work/shared/API.md).

``errors_are_problem_details``: every error response of the REST API is an RFC 9457
problem with the request id, and a 401 says ``WWW-Authenticate: Bearer``.

``positive_data_rejected_only_for_unwritable_rules``: schemathesis' own
``positive_data_acceptance`` is told that 400, 412 and 422 may answer schema-valid
data, because a few rules cannot be written in JSON Schema: an opaque cursor or
emailed token is schema-valid whatever its content, a current password or an
If-Match version may simply be wrong, an email may be taken, and new passwords are
screened against a list of common ones. This check then holds every such rejection
to exactly those rules, so that any other 400/412/422 for schema-valid data (a
schema that promises more than the service accepts) still fails.

``only_oversized_bodies_get_413``: schemathesis' ``negative_data_rejection`` is told
that 413 rejects invalid data too: a string far beyond a field's ``maxLength`` can make
the whole body larger than the service's body limit, which refuses it before parsing
(docs/decisions.md, "Our own body-size limit"). This check holds every 413 to exactly
that: the body sent must be larger than the limit.

``graphql_answers_within_contract``: GraphQL's type system cannot carry value rules
(an ID's format, ``first`` at most 100, an email's syntax), so the contract answers
type-valid but wrong values with ``BAD_USER_INPUT``, and wrong credentials, absent
users and the like with the other codes it lists. Schemathesis' GraphQL heuristics
call the first a rejected positive case and every other coded resolver error a
server error; this check replaces those two with the contract's exact rule: no 5xx,
a JSON object, every error coded with one of the contract's codes (never
``INTERNAL_SERVER_ERROR``), nothing internal in a message, and for type-valid
queries no error outside a resolver (which would mean the SDL promises more than
the server accepts).
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis import Case, CheckContext, Response

from accounts.settings import Settings

PROBLEM_KEYS = {"type", "title", "status", "detail", "request_id"}
# Statuses schemathesis' positive_data_acceptance accepts; the check below narrows them.
POSITIVE_EXPECTED_STATUSES = ["2XX", "400", "401", "403", "404", "409", "412", "422", "429"]
# schemathesis' own negative_data_rejection list, plus the body limit's 413 (checked
# below to answer only bodies over the limit).
NEGATIVE_EXPECTED_STATUSES = [
    *("400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"),
    "5xx",  # still a failure: schemathesis' not_a_server_error check fails every 5xx
]
# The body limit of the fuzz targets (_target.make_target sets it): the default.
MAX_REQUEST_BODY_BYTES: int = Settings.model_fields["max_request_body_bytes"].default
# 400s that schema-valid data can legitimately get (the problem ``type`` says which).
SEMANTIC_400_TYPES = {
    "urn:accounts:problem:email-taken",
    "urn:accounts:problem:incorrect-password",
    "urn:accounts:problem:invalid-token",
}
# Values no schema can tell apart from good ones.
OPAQUE_FIELDS = {("query", "cursor")}
PASSWORD_FIELDS = {"password", "new_password"}
PASSWORD_POLICY_MESSAGES = (
    "is one of the most common passwords; choose another",
    "must not be your email address",
    "must not be your name",
)


GRAPHQL_CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "EMAIL_TAKEN",
    "CONFLICT",
    "BAD_USER_INPUT",
    "RATE_LIMITED",
}
INTERNAL_MARKERS = ("Traceback", "sqlalchemy", "asyncpg", "aiosqlite", 'File "', "/src/accounts")


def _is_rest(case: Case) -> bool:
    return case.operation.schema.specification.kind.name == "OPENAPI"


def _is_graphql(case: Case) -> bool:
    return case.operation.schema.specification.kind.name == "GRAPHQL"


def _header(response: Response, name: str) -> str | None:
    values = response.headers.get(name.lower())
    return values[0] if values else None


def _body(response: Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"error body is not JSON: {response.content[:200]!r}") from exc


@schemathesis.check
def errors_are_problem_details(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    if not _is_rest(case) or response.status_code < 400:
        return None
    content_type = _header(response, "content-type") or ""
    assert content_type.startswith("application/problem+json"), (
        f"{response.status_code} answered with Content-Type {content_type!r}, not a problem"
    )
    body = _body(response)
    assert isinstance(body, dict), body
    assert body.keys() >= PROBLEM_KEYS, f"problem lacks {PROBLEM_KEYS - body.keys()}: {body}"
    assert body["status"] == response.status_code, body
    assert body["request_id"] == _header(response, "x-request-id"), body
    if response.status_code == 401:
        assert _header(response, "www-authenticate") == "Bearer", response.headers
    if response.status_code == 422:
        assert isinstance(body.get("errors"), list), body
    return None


@schemathesis.check
def only_oversized_bodies_get_413(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    if not _is_rest(case) or response.status_code != 413:
        return None
    body = response.request.body or b""
    size = len(body.encode() if isinstance(body, str) else body)
    assert size > MAX_REQUEST_BODY_BYTES, (
        f"413 for a body of {size} bytes, within the {MAX_REQUEST_BODY_BYTES}-byte limit"
    )
    return None


def _is_policy_error(error: dict[str, Any]) -> bool:
    loc = tuple(error.get("loc", ()))
    if loc in OPAQUE_FIELDS:
        return True
    # "format: email" cannot say which domains are reserved or special-use (RFC 6761),
    # which email-validator refuses.
    if loc and loc[-1] == "email" and "is not a valid email address" in str(error.get("msg")):
        return True
    return bool(loc) and loc[-1] in PASSWORD_FIELDS and error.get("msg") in PASSWORD_POLICY_MESSAGES


@schemathesis.check
def positive_data_rejected_only_for_unwritable_rules(
    ctx: CheckContext, response: Response, case: Case
) -> bool | None:
    meta = case.meta
    if not _is_rest(case) or meta is None or not meta.generation.mode.is_positive:
        return None
    status = response.status_code
    if status == 400:
        problem_type = _body(response).get("type")
        assert problem_type in SEMANTIC_400_TYPES, (
            f"schema-valid data rejected with 400 {problem_type!r}: {response.content[:300]!r}"
        )
    elif status == 412:
        headers = {name.lower() for name in (case.headers or {})}
        assert "if-match" in headers, "412 for a request without If-Match"
    elif status == 422:
        errors = _body(response).get("errors") or []
        unexpected = [error for error in errors if not _is_policy_error(error)]
        assert errors, "422 without errors"
        assert not unexpected, f"schema-valid data rejected with 422: {unexpected}"
    return None


@schemathesis.check
def graphql_answers_within_contract(
    ctx: CheckContext, response: Response, case: Case
) -> bool | None:
    if not _is_graphql(case):
        return None
    assert response.status_code < 500, f"{response.status_code}: {response.content[:300]!r}"
    payload = _body(response)
    assert isinstance(payload, dict), payload
    errors = payload.get("errors") or []
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    for error in errors:
        code = (error.get("extensions") or {}).get("code")
        assert code in GRAPHQL_CODES, f"error code {code!r} is not the contract's: {error}"
        message = str(error.get("message", ""))
        assert not any(marker in message for marker in INTERNAL_MARKERS), error
        if positive:
            assert error.get("path"), f"a type-valid query failed validation: {error}"
    return None
