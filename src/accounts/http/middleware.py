"""Pure-ASGI middleware (no ``BaseHTTPMiddleware``: it buffers and costs a task per request).

``RequestContextMiddleware`` is the outermost of ours: it gives every request an id,
logs one line per request, and turns any exception that escaped the handlers into
a masked 500 problem. ``BodySizeLimitMiddleware`` refuses oversized bodies with 413
before anything parses or hashes them.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Iterable

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accounts.http.problems import http_problem, internal_error
from accounts.metrics import Metrics

# nginx's convention for "the client closed the connection before the answer".
CLIENT_CLOSED_REQUEST = 499
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
logger = structlog.get_logger("accounts.http")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


# Request ids need to be unique, not secret: they come from a PRNG of our own rather
# than a getrandom() system call per request (~2% of a cheap authenticated read). Not
# the global one, which other code may seed; reseeded in a forked child, so that
# forked workers do not repeat each other's ids.
_request_ids = random.Random()  # noqa: S311 - identifiers, not secrets
os.register_at_fork(after_in_child=_request_ids.seed)


def _new_request_id() -> str:
    # 32 hex digits, like uuid4().hex.
    return f"{_request_ids.getrandbits(128):032x}"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = _header(scope, b"x-request-id")
        request_id = offered if offered and _SANE_REQUEST_ID.match(offered) else _new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = message.get("headers") or []
                if not any(name.lower() == b"x-request-id" for name, _ in headers):
                    # A new list: a response object may be sent more than once, and
                    # its own header list must not grow with every request.
                    message["headers"] = [*headers, (b"x-request-id", request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except ClientDisconnect:
                # The client went away mid-request: nobody to answer, nothing broken.
                status = CLIENT_CLOSED_REQUEST
            except Exception:
                logger.exception("unhandled error", path=scope.get("path"))
                if not response_started:
                    await internal_error(request_id)(scope, receive, send_with_id)
            finally:
                # The route template, never the raw path: ids in paths would make
                # unbounded metric labels.
                route = route_template(scope)
                elapsed = time.perf_counter() - started
                logger.info(
                    "request",
                    method=scope.get("method"),
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    user_id=scope.get("state", {}).get("user_id"),
                )
                metrics = _metrics_of(scope)
                if metrics is not None:
                    metrics.observe_request(str(scope.get("method")), route, status, elapsed)


UNMATCHED = "<unmatched>"


class RouteTemplates:
    """The app's HTTP routes, to find the template of a request the router did not
    label: see ``route_template``."""

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        self._routes = [route for route in routes if isinstance(route, Route)]

    def template_of(self, scope: Scope) -> str | None:
        """The path template of the route that serves (or would serve) ``scope``:
        as the router chooses, a full match first, else one for another method."""
        other_method = None
        for route in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return route.path
            if match is Match.PARTIAL and other_method is None:
                other_method = route.path
        return other_method


def route_template(scope: Scope) -> str:
    """The template of the route a request was for, ``<unmatched>`` if none."""
    path = getattr(scope.get("route"), "path", None)
    if path:
        return str(path)
    # FastAPI puts the route in the scope only for its own APIRoutes, not for the
    # Starlette routes of /docs and /openapi.json; and a request refused before
    # routing (a declared body over the limit, 413) never reached the router. Only
    # these pay for matching again: every API route labels itself.
    templates = getattr(getattr(scope.get("app"), "state", None), "route_templates", None)
    if isinstance(templates, RouteTemplates):
        return templates.template_of(scope) or UNMATCHED
    return UNMATCHED


def _metrics_of(scope: Scope) -> Metrics | None:
    container = getattr(getattr(scope.get("app"), "state", None), "container", None)
    metrics = getattr(container, "metrics", None)
    return metrics if isinstance(metrics, Metrics) else None


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit.

    An HTTPException, because FastAPI re-raises those from body parsing as they
    are (anything else there becomes a generic 400), and the problem handler
    renders it as a 413.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The request body is larger than {max_bytes} bytes.")


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is None and _header(scope, b"transfer-encoding") is None:
            # No body (RFC 9112 §6.3): nothing to count, so no wrappers to pay for.
            await self.app(scope, receive, send)
            return
        request_id = str(scope.get("state", {}).get("request_id", ""))
        if declared is not None and not declared.isdigit():
            await http_problem(400, "Invalid Content-Length header.", request_id)(
                scope, receive, send
            )
            return
        if declared is not None and int(declared) > self.max_bytes:
            await self._too_large(request_id)(scope, receive, send)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if response_started:
                raise
            await self._too_large(request_id)(scope, receive, send)

    def _too_large(self, request_id: str) -> ASGIApp:
        return http_problem(413, str(BodyTooLarge(self.max_bytes).detail), request_id)


class HeadAsGetMiddleware:
    """Answer ``HEAD`` as ``GET`` without the body (RFC 9110 §9.3.2).

    FastAPI's routes accept only the methods they declare, so without this every
    ``HEAD`` was a 405. The headers are GET's, Content-Length included, as the RFC
    asks; the logs and metrics (outside this middleware) still say HEAD.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        as_get = {**scope, "method": "GET"}
        await self.app(as_get, receive, send_without_body)
        # The route the router matched, for the request log and metrics outside.
        if "route" in as_get:
            scope["route"] = as_get["route"]
