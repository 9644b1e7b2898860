"""/graphql as an HTTP endpoint: the bodies it refuses before any GraphQL runs, and
the WebSocket upgrade it does not serve.

A request that is not a GraphQL request at all (a body that is not a JSON object, an
``operationName`` that cannot name an operation, a document that does not say which of
its operations to run) is refused as every other error of the service is: a 4xx
``application/problem+json``, never a 500. Bodies are sent
raw, as a client could send them, through the real app on a real database.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Scope

from tests.factories import Account, account
from tests.graphql_helpers import data_of

GRAPHQL = "/graphql"


async def post_raw(client: httpx.AsyncClient, raw: bytes) -> httpx.Response:
    return await client.post(GRAPHQL, content=raw, headers={"Content-Type": "application/json"})


def assert_problem(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["request_id"] == response.headers["x-request-id"]
    return problem


@pytest.mark.parametrize("raw", [b"null", b'"str"', b"1", b"1.5", b"true", b"false"])
async def test_a_body_that_is_json_but_not_an_object_is_a_400_problem(
    client: httpx.AsyncClient, raw: bytes
) -> None:
    problem = assert_problem(await post_raw(client, raw))

    assert problem["detail"] == "The GraphQL request must be a JSON object."


@pytest.mark.parametrize("name", ["5", "true", '["A"]', '{"name": "A"}'])
async def test_an_operation_name_that_is_not_a_string_is_a_400_problem(
    client: httpx.AsyncClient, name: str
) -> None:
    raw = b'{"query": "query A { __typename }", "operationName": ' + name.encode() + b"}"

    problem = assert_problem(await post_raw(client, raw))

    assert "operationName" in problem["detail"]


# A lone surrogate is not text: JSON can spell one ("\ud800"), UTF-8 cannot carry it.
# Wherever it is in the request it is refused with the request, before anything (the
# problem renderer included, which could not encode it) sees it.
LONE_SURROGATE_BODIES = {
    "operationName": rb'{"query": "{ me { id } }", "operationName": "\ud800"}',
    "query": rb'{"query": "{ me { id } } \ud800"}',
    "a variable's name": rb'{"query": "{ __typename }", "variables": {"\ud800": 1}}',
    "a variable's value": (
        rb'{"query": "query($id: ID!) { user(id: $id) { id } }", "variables": {"id": "\ud800"}}'
    ),
    "extensions": rb'{"query": "{ __typename }", "extensions": {"a": "\udfff"}}',
    "a surrogate as raw UTF-8 bytes": (
        b'{"query": "{ __typename }", "variables": {"a": "\xed\xa0\x80"}}'
    ),
}


@pytest.mark.parametrize("raw", LONE_SURROGATE_BODIES.values(), ids=LONE_SURROGATE_BODIES.keys())
async def test_a_lone_surrogate_anywhere_in_the_request_is_a_400_problem(
    client: httpx.AsyncClient, raw: bytes
) -> None:
    problem = assert_problem(await post_raw(client, raw))

    assert problem["detail"] == "Unable to parse request body as JSON"


async def test_a_surrogate_pair_is_text_and_goes_through(client: httpx.AsyncClient) -> None:
    raw = rb'{"query": "{ me { id } }", "operationName": "\ud83d\ude00"}'

    problem = assert_problem(await post_raw(client, raw))

    assert problem["detail"] == 'Unknown operation named "\U0001f600".'


# --- choosing the operation ------------------------------------------------------------
# A document of several operations must say which one to run (GraphQL spec,
# GetOperation); without an operationName it is refused as an unknown one is.

TWO_OPERATIONS = (
    "mutation Out($token: String!) { logout(refreshToken: $token) } query Me { me { id } }"
)


async def post_operation(
    client: httpx.AsyncClient, caller: Account, operation_name: str | None = None
) -> httpx.Response:
    payload: dict[str, Any] = {
        "query": TWO_OPERATIONS,
        "variables": {"token": caller.refresh_token},
    }
    if operation_name is not None:
        payload["operationName"] = operation_name
    return await client.post(GRAPHQL, json=payload, headers=caller.headers)


async def test_several_operations_without_an_operation_name_are_refused_and_none_runs(
    client: httpx.AsyncClient,
) -> None:
    caller = await account(client)

    problem = assert_problem(await post_operation(client, caller))

    assert problem["detail"] == (
        "Must provide operation name if query contains multiple operations."
    )
    # The first operation, the logout, did not run: the session is still live.
    me = await client.post(GRAPHQL, json={"query": "{ me { id } }"}, headers=caller.headers)
    assert me.json() == {"data": {"me": {"id": caller.id}}}


async def test_an_unknown_operation_name_is_refused_alike(client: httpx.AsyncClient) -> None:
    caller = await account(client)

    problem = assert_problem(await post_operation(client, caller, "Nope"))

    assert problem["detail"] == 'Unknown operation named "Nope".'


@pytest.mark.parametrize(
    ("name", "data"), [("Me", "me"), ("Out", "logout")], ids=["the second", "the first"]
)
async def test_the_named_operation_of_several_runs(
    client: httpx.AsyncClient, name: str, data: str
) -> None:
    caller = await account(client)

    response = await post_operation(client, caller, name)

    assert response.status_code == 200, response.text
    assert list(data_of(response.json())) == [data]


async def test_a_lone_operation_needs_no_name(client: httpx.AsyncClient) -> None:
    response = await client.post(GRAPHQL, json={"query": "query Only { __typename }"})

    assert response.json() == {"data": {"__typename": "Query"}}


# --- nesting -----------------------------------------------------------------------------


def nested_lists(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def request_with_variable(value: bytes) -> bytes:
    return b'{"query": "{ __typename }", "variables": {"v": ' + value + b"}}"


TOO_DEEP = "The GraphQL request nests more than 32 levels deep."
TOO_DEEP_BODIES = {
    "the body": nested_lists(1000),
    "a variable": request_with_variable(nested_lists(1000)),
    "one level over": request_with_variable(nested_lists(31)),  # + the request, variables
    "objects": request_with_variable(b'{"a":' * 100 + b"1" + b"}" * 100),
    "extensions": b'{"query": "{ __typename }", "extensions": {"e": ' + nested_lists(100) + b"}}",
}


@pytest.mark.parametrize("raw", TOO_DEEP_BODIES.values(), ids=TOO_DEEP_BODIES.keys())
async def test_json_nested_too_deep_is_a_400_problem(client: httpx.AsyncClient, raw: bytes) -> None:
    problem = assert_problem(await post_raw(client, raw))

    assert problem["detail"] == TOO_DEEP


async def test_json_nested_past_what_the_parser_takes_is_a_400_problem(
    client: httpx.AsyncClient,
) -> None:
    # Past orjson's own limit (1,024 levels) the body is malformed, as for any parser.
    problem = assert_problem(await post_raw(client, request_with_variable(nested_lists(2000))))

    assert problem["detail"] == "Unable to parse request body as JSON"


async def test_json_nested_32_levels_deep_is_a_request(client: httpx.AsyncClient) -> None:
    response = await post_raw(client, request_with_variable(nested_lists(30)))

    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"__typename": "Query"}}


# --- WebSocket ---------------------------------------------------------------------------


async def websocket_handshake(app: FastAPI, path: str) -> list[Message]:
    """What the app sends back for a WebSocket upgrade at ``path``, driven over ASGI as
    a server drives it: ``websocket.close`` before any accept is the server's 403."""
    incoming: list[Message] = [{"type": "websocket.connect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"connection", b"Upgrade"),
            (b"upgrade", b"websocket"),
            (b"sec-websocket-version", b"13"),
            (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            (b"sec-websocket-protocol", b"graphql-transport-ws"),
        ],
        "subprotocols": ["graphql-transport-ws"],
        "state": {},
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    return sent


async def test_a_websocket_upgrade_is_refused_as_at_any_other_path(app: FastAPI) -> None:
    """Subscriptions are not part of the API: the upgrade is closed before it is
    accepted (a 403 from the server), as at a path that serves no WebSocket."""
    answer = await websocket_handshake(app, GRAPHQL)

    assert [message["type"] for message in answer] == ["websocket.close"]
    assert answer == await websocket_handshake(app, "/api/v1/users/me")
