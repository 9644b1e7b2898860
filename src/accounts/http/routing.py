"""Route classes: how a route turns a request into a call of its endpoint.

FastAPI's generic handler solves the endpoint's dependency graph on every request:
it walks the declared parameters, runs each dependency, validates what they return
and collects errors. For ``GET /api/v1/users/me``, the authenticated hot path, that
machinery was 16% of the instructions of the whole request (callgrind, counted over
600 requests), and the request's one input is the caller.

``CallerOnlyRoute`` is FastAPI's documented extension point for this (a custom
``APIRoute`` whose ``get_route_handler`` returns the handler): for an endpoint whose
only parameter is the authenticated principal, it authenticates with the same
``get_principal`` scheme and calls the endpoint directly. Everything else stays
FastAPI's: the router matches the route, ``request_response`` wraps the handler (so
a domain error raised by authentication reaches the same problem handlers), and the
OpenAPI description is generated from the same signature, security scheme included.
The route refuses, when it is declared, an endpoint it could not call faithfully: one
that takes anything but the principal or does not return a ``Response``. Where it
cannot take the short cut, it hands the request to FastAPI's own handler: when its
router or the app adds dependencies, and when a dependency override replaces
``get_principal`` (as a test might).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import fastapi.routing
from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from accounts.http.dependencies import get_principal
from accounts.services.auth import Principal

CallerEndpoint = Callable[[Principal], Awaitable[Response]]


class CallerOnlyRoute(APIRoute):
    """A route whose ``async`` endpoint takes the principal alone and returns a
    ``Response`` (so there is no response model to validate it against)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        # Called by APIRoute.__init__ once the dependant is built, and again for each
        # router the route is included in.
        fastapi_handler = super().get_route_handler()
        if not _takes_only_the_caller(self.endpoint, self.dependant):
            raise TypeError(
                f"{self.path}: a CallerOnlyRoute endpoint is async, takes the principal and"
                " nothing else, and returns a Response"
            )
        route = _effective(self)
        if not _takes_only_the_caller(self.endpoint, route.dependant):
            # Included with dependencies of the router's or the app's: they must run,
            # and FastAPI's handler runs them.
            return fastapi_handler
        endpoint: CallerEndpoint = self.endpoint
        overrides_provider = route.dependency_overrides_provider

        async def handle(request: Request) -> Response:
            overrides = getattr(overrides_provider, "dependency_overrides", None)
            if overrides and get_principal in overrides:
                return await fastapi_handler(request)
            # The principal is the endpoint's one parameter (checked above).
            return await endpoint(await get_principal(request))

        return handle


def _effective(route: APIRoute) -> Any:
    """The route as included: FastAPI 0.16x builds an included route's handler with
    its effective context (the router's and app's dependencies added) in a context
    variable; earlier versions copy the route, and ``route`` is that copy."""
    variable = getattr(fastapi.routing, "_effective_route_context_var", None)
    context = variable.get() if variable is not None else None
    if context is not None and getattr(context, "original_route", None) is route:
        return context
    return route


def _takes_only_the_caller(endpoint: Callable[..., Any], dependant: Dependant) -> bool:
    inputs = (
        dependant.path_params,
        dependant.query_params,
        dependant.header_params,
        dependant.cookie_params,
        dependant.body_params,
    )
    special = (
        dependant.request_param_name,
        dependant.websocket_param_name,
        dependant.http_connection_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    returns = inspect.signature(endpoint, eval_str=True).return_annotation
    return (
        inspect.iscoroutinefunction(endpoint)
        and isinstance(returns, type)
        and issubclass(returns, Response)
        and len(dependant.dependencies) == 1
        and dependant.dependencies[0].call is get_principal
        and not any(inputs)
        and not any(special)
    )
