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
The route refuses, when it is declared, any endpoint it could not call faithfully.
It does not run dependencies given where its router is included
(``include_router(..., dependencies=...)``): Accounts gives none.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
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
        dependant = self.dependant
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
        only_the_caller = (
            inspect.iscoroutinefunction(self.endpoint)
            and len(dependant.dependencies) == 1
            and dependant.dependencies[0].call is get_principal
            and not any(inputs)
            and not any(special)
        )
        if not only_the_caller:
            raise TypeError(
                f"{self.path}: a CallerOnlyRoute endpoint is async and takes the principal"
                " and nothing else"
            )
        endpoint: CallerEndpoint = self.endpoint

        async def handle(request: Request) -> Response:
            # The principal is the endpoint's one parameter (checked above).
            return await endpoint(await get_principal(request))

        return handle
