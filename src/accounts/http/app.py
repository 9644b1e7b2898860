"""The app factory. ``create_app(settings)`` returns an app whose lifespan builds,
starts and finally closes every resource through ``bootstrap.build``.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from accounts import __version__, arena_cache
from accounts.bootstrap import build
from accounts.http import ops
from accounts.http.graphql.router import build_router as build_graphql_router
from accounts.http.middleware import (
    BodySizeLimitMiddleware,
    HeadAsGetMiddleware,
    RequestContextMiddleware,
    RouteTemplates,
)
from accounts.http.pages import routes as page_routes
from accounts.http.problems import install_problem_handlers
from accounts.http.rest import audit as audit_routes
from accounts.http.rest import auth as auth_routes
from accounts.http.rest import lifecycle as lifecycle_routes
from accounts.http.rest import users as user_routes
from accounts.logging import configure_logging
from accounts.settings import Settings, load_settings

DESCRIPTION = """\
User accounts as a service: registration, login with rotating refresh tokens,
profiles and administration. Errors are `application/problem+json` (RFC 9457).

Use **Authorize** with an email (as *username*) and password to try the
authenticated endpoints.
"""


def serve_app() -> FastAPI:
    """The app as ``accounts serve`` runs it, one per worker process."""
    # Process-wide, so only here: frame stacks reused rather than unmapped, which
    # would stall the event loop while a hash runs on another core (arena_cache.py).
    arena_cached = arena_cache.install()
    app = create_app(freeze_heap=True, cache_loggers=True)
    if not arena_cached:
        structlog.get_logger("accounts.server").warning(
            "arena_cache_unavailable",
            detail="accounts._arena_cache was not built: logins run slower under load",
        )
    return app


def _freeze_heap() -> None:
    # Everything alive once started (modules, routes, schemas, pools: ~100 MiB of
    # objects) lives as long as the process. Left in the collector's oldest
    # generation, each full collection walked all of it: ~100 ms pauses, ten times in
    # five seconds under load, which cut throughput by a quarter and put 100 ms on the
    # p99. Frozen, a collection walks only what requests allocate (docs/performance.md).
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None, *, freeze_heap: bool = False, cache_loggers: bool = False
) -> FastAPI:
    """The app. ``freeze_heap`` and ``cache_loggers`` are for a server process that runs
    only this app: tests build many apps in one process, where frozen objects are never
    freed and a cached logger would keep an earlier app's log configuration."""
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.log_format, cache_loggers=cache_loggers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = build(settings)
        try:
            await container.start()
            container.start_background()
            app.state.container = container
            if freeze_heap:
                _freeze_heap()
            yield
        finally:
            await container.close()

    app = FastAPI(
        title="Accounts",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        # FastAPI's own OpenTelemetry hooks: we export metrics and logs ourselves.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_problem_handlers(app)
    routers = [
        user_routes.router,
        auth_routes.router,
        lifecycle_routes.router,
        audit_routes.router,
        page_routes.router,
        ops.router,
        build_graphql_router(),
    ]
    for router in routers:
        app.include_router(router)
    # Every route with its template, for the requests the router does not label
    # (middleware.route_template): the app's own (/docs, /openapi.json) and the
    # included ones (none has a prefix of its own to add).
    app.state.route_templates = RouteTemplates(
        [*app.router.routes, *(route for router in routers for route in router.routes)]
    )
    # Added last is outermost: request ids and the 500 safety net wrap everything.
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    return app
