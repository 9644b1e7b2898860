"""Mounts the schema at /graphql, with GraphiQL for browsers."""

from __future__ import annotations

from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from fastapi.routing import APIWebSocketRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLRequestData
from strawberry.types.unset import UNSET

from accounts.http.dependencies import BearerTokenDep, ClientInfoDep, ContainerDep
from accounts.http.graphql import body
from accounts.http.graphql.context import GraphQLContext
from accounts.http.graphql.schema import build_schema
from accounts.http.problems import http_problem, request_id_of


async def get_context(
    container: ContainerDep, client: ClientInfoDep, token: BearerTokenDep
) -> GraphQLContext:
    return GraphQLContext(container, client, token)


class ProblemGraphQLRouter(GraphQLRouter[GraphQLContext, None]):
    """Strawberry's router, with its own HTTP errors (a query over GET, a body that is
    not JSON) answered as problem details like every other error of the service, and
    without its WebSocket route."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Subscriptions are not part of the API, but Strawberry serves WebSockets at the
        # same path, and our context's dependencies take a Request a WebSocket is not:
        # an upgrade failed there with a TypeError (a 500 and a traceback). Without the
        # route, /graphql refuses an upgrade as every other path does (403).
        self.routes[:] = [
            route for route in self.routes if not isinstance(route, APIWebSocketRoute)
        ]

    async def run(  # type: ignore[override]
        self,
        request: Request | WebSocket,
        context: GraphQLContext | None = UNSET,
        root_value: None = UNSET,
    ) -> Response | WebSocket:
        try:
            return await super().run(request, context=context, root_value=root_value)  # type: ignore[arg-type]
        except HTTPException as exc:
            if not isinstance(request, Request):
                raise
            return http_problem(exc.status_code, exc.reason, request_id_of(request))

    def parse_json(self, data: str | bytes) -> Any:
        # Every JSON the view decodes (the body, or a GET's variables) comes through here.
        return body.parse_json(data)

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        parsed = await super().parse_http_body(request)
        if isinstance(parsed, GraphQLRequestData):
            body.check_operation_name(parsed)
        return parsed


def build_router() -> GraphQLRouter[GraphQLContext, None]:
    return ProblemGraphQLRouter(
        build_schema(),
        path="/graphql",
        graphql_ide="graphiql",
        # Queries over GET would put tokens' neighbours in URLs and logs; POST only.
        allow_queries_via_get=False,
        context_getter=get_context,
        # GraphQL documents itself (introspection, docs/schema.graphql); in the REST
        # OpenAPI document it would only misdescribe GraphiQL and GraphQL errors.
        include_in_schema=False,
    )
