"""Problem details (RFC 9457) for every error, on every path.

One table maps each domain error code to its HTTP status and title; the handlers
below render domain errors, framework errors (404, 405, 422) and, as a last resort,
a masked 500 in the same shape, always with the request id.
"""

from __future__ import annotations

import http
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from accounts.domain.errors import DomainError, InvalidInput, RateLimited

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:accounts:problem:"


@dataclass(frozen=True, slots=True)
class ProblemKind:
    status: int
    title: str


PROBLEMS: dict[str, ProblemKind] = {
    "invalid_input": ProblemKind(422, "Validation failed"),
    "invalid_cursor": ProblemKind(422, "Validation failed"),
    "not_authenticated": ProblemKind(401, "Not authenticated"),
    "invalid_credentials": ProblemKind(401, "Invalid credentials"),
    "forbidden": ProblemKind(403, "Forbidden"),
    "inactive_user": ProblemKind(403, "Inactive user"),
    "registration_closed": ProblemKind(403, "Registration closed"),
    "not_found": ProblemKind(404, "Not found"),
    "email_taken": ProblemKind(400, "Email already registered"),
    "incorrect_password": ProblemKind(400, "Incorrect password"),
    "invalid_token": ProblemKind(400, "Invalid token"),
    "conflict": ProblemKind(409, "Conflict"),
    "last_superuser": ProblemKind(409, "Last superuser"),
    "precondition_failed": ProblemKind(412, "Precondition failed"),
    "rate_limited": ProblemKind(429, "Too many requests"),
    "unavailable": ProblemKind(503, "Service unavailable"),
}
_FALLBACK = ProblemKind(400, "Bad request")


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def problem_response(
    *,
    status: int,
    title: str,
    detail: str,
    request_id: str,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
        **(extra or {}),
    }
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    if request_id:
        all_headers["X-Request-ID"] = request_id
    return Response(
        orjson.dumps(body), status_code=status, headers=all_headers, media_type=PROBLEM_MEDIA_TYPE
    )


def http_problem(status: int, detail: str, request_id: str, **kwargs: Any) -> Response:
    """A problem for a plain HTTP condition (no domain meaning): type about:blank."""
    try:
        title = http.HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    return problem_response(
        status=status, title=title, detail=detail, request_id=request_id, **kwargs
    )


def internal_error(request_id: str) -> Response:
    return http_problem(500, "An unexpected error occurred.", request_id)


def domain_error_response(exc: DomainError, request_id: str) -> Response:
    kind = PROBLEMS.get(exc.code, _FALLBACK)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
        # draft-ietf-httpapi-ratelimit-headers: the limit, what is left, and when it resets.
        if exc.limit:
            headers["RateLimit-Limit"] = str(exc.limit)
        headers["RateLimit-Remaining"] = "0"
        headers["RateLimit-Reset"] = str(exc.retry_after)
    if kind.status == 503:
        headers["Retry-After"] = "1"
    if isinstance(exc, InvalidInput):
        extra["errors"] = [
            {"loc": list(error.loc), "msg": error.msg, "type": error.type} for error in exc.errors
        ]
    return problem_response(
        status=kind.status,
        title=kind.title,
        detail=exc.message,
        request_id=request_id,
        type_=TYPE_PREFIX + exc.code.replace("_", "-"),
        headers=headers,
        extra=extra,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only loc, msg and type: pydantic's ``input`` and ``ctx`` would echo what was
    # submitted, passwords included.
    return [
        {
            "loc": list(error.get("loc", ())),
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()
    ]


async def _on_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return domain_error_response(exc, request_id_of(request))


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_response(
        status=422,
        title="Validation failed",
        detail="The request is not valid; see errors.",
        request_id=request_id_of(request),
        type_=TYPE_PREFIX + "invalid-input",
        extra={"errors": _validation_errors(exc)},
    )


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (RFC 9110 §15.5.6), not just the first."""
    allowed = [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else http.HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return http_problem(exc.status_code, detail, request_id_of(request), headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
