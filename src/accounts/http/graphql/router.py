"""Mounts the schema at /graphql, with GraphiQL for browsers."""

from __future__ import annotations

from strawberry.fastapi import GraphQLRouter

from accounts.http.dependencies import BearerTokenDep, ClientInfoDep, ContainerDep
from accounts.http.graphql.context import GraphQLContext
from accounts.http.graphql.schema import build_schema


async def get_context(
    container: ContainerDep, client: ClientInfoDep, token: BearerTokenDep
) -> GraphQLContext:
    return GraphQLContext(container, client, token)


def build_router() -> GraphQLRouter[GraphQLContext, None]:
    return GraphQLRouter(
        build_schema(),
        path="/graphql",
        graphql_ide="graphiql",
        # Queries over GET would put tokens' neighbours in URLs and logs; POST only.
        allow_queries_via_get=False,
        context_getter=get_context,
        tags=["graphql"],
    )
