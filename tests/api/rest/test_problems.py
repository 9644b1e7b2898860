"""The conventions every response keeps: problem details for every error, request
ids, body size limits, and the operational and documentation endpoints."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from accounts.bootstrap import Container
from accounts.http.app import create_app
from accounts.settings import Settings
from tests.factories import PASSWORD, login, register, unique_email

PROBLEM_KEYS = {"type", "title", "status", "detail", "request_id"}
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
SECRET = "secret sql detail /etc/passwd"


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    # conftest's ``app`` yields LifespanManager.app, which asgi-lifespan 2.x wraps in
    # a state middleware (a plain function), so ``container`` cannot reach
    # ``app.state`` through it. Yield the FastAPI app itself, its lifespan running.
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Check the RFC 9457 shape and the request id, and return the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert URI.match(body["type"]), body["type"]
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["request_id"]
    assert response.headers["x-request-id"] == body["request_id"]
    return body


def keys_anywhere(value: object) -> set[str]:
    if isinstance(value, dict):
        found = set(value)
        for item in value.values():
            found |= keys_anywhere(item)
        return found
    if isinstance(value, list):
        found = set()
        for item in value:
            found |= keys_anywhere(item)
        return found
    return set()


def oversized_registration(email: str) -> bytes:
    """A registration body of about 100 kB, over the default 64 KiB limit."""
    return json.dumps({"email": email, "password": PASSWORD, "name": "x" * 100_000}).encode()


# --- Problem details for framework errors ------------------------------------------


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/no-such-thing")

    assert_problem(response, 404)


def allowed_methods(response: httpx.Response) -> set[str]:
    return {method.strip().upper() for method in response.headers["allow"].split(",")}


async def test_wrong_method_is_a_405_problem_with_allow_header(
    client: httpx.AsyncClient,
) -> None:
    response = await client.delete("/healthz")

    assert_problem(response, 405)
    assert "GET" in allowed_methods(response)
    assert "DELETE" not in allowed_methods(response)


async def test_head_is_answered_as_get_without_a_body(client: httpx.AsyncClient) -> None:
    user = await register(client)
    pair = await login(client, user["email"])
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    for path in ("/api/v1/users/me", f"/api/v1/users/{user['id']}", "/healthz", "/openapi.json"):
        got = await client.get(path, headers=headers)
        head = await client.head(path, headers=headers)
        assert (head.status_code, got.status_code) == (200, 200), path
        assert head.content == b"", path
        for name in ("content-type", "content-length", "etag"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)


async def test_head_without_a_token_is_a_401_without_a_body(client: httpx.AsyncClient) -> None:
    response = await client.head("/api/v1/users/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.content == b""


async def test_head_where_only_post_is_served_is_a_405(client: httpx.AsyncClient) -> None:
    response = await client.head("/api/v1/auth/login")
    assert response.status_code == 405
    assert allowed_methods(response) == {"POST"}


async def test_405_allow_header_lists_every_method_of_the_path(
    client: httpx.AsyncClient,
) -> None:
    # /api/v1/users answers GET (list) and POST (register), from two routes.
    response = await client.put("/api/v1/users")

    assert_problem(response, 405)
    assert {"GET", "POST"} <= allowed_methods(response)


async def test_invalid_body_is_a_422_problem_listing_errors_without_input(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/users",
        json={
            "email": "not-an-email",
            "password": "p4ss",
            "name": "Ada",
            "is_superuser": True,
        },
    )

    body = assert_problem(response, 422)
    errors = body["errors"]
    assert errors
    for error in errors:
        assert set(error) == {"loc", "msg", "type"}, error
        assert isinstance(error["loc"], list)
        assert isinstance(error["msg"], str)
        assert isinstance(error["type"], str)
    locations = {tuple(error["loc"]) for error in errors}
    assert {("body", "email"), ("body", "password"), ("body", "is_superuser")} <= locations
    assert "input" not in keys_anywhere(body)
    assert "p4ss" not in response.text


async def test_malformed_json_is_a_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/users", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )

    body = assert_problem(response, 422)
    assert "input" not in keys_anywhere(body)


async def test_unexpected_exception_is_a_masked_500_problem(settings: Settings) -> None:
    application = create_app(settings)

    async def explode() -> None:
        raise RuntimeError(SECRET)

    application.add_api_route("/test-only/explode", explode, methods=["GET"])
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.get("/test-only/explode")

    body = assert_problem(response, 500)
    everything = response.text + json.dumps(dict(response.headers))
    for leak in ("secret", "/etc/passwd", "RuntimeError", "Traceback", "explode"):
        assert leak not in everything, leak
    assert SANE_REQUEST_ID.match(body["request_id"])


# --- Body size limit ---------------------------------------------------------------


async def test_body_over_the_limit_with_declared_length_is_a_413_problem(
    client: httpx.AsyncClient, container: Container
) -> None:
    email = unique_email()
    content = oversized_registration(email)

    response = await client.post(
        "/api/v1/users", content=content, headers={"Content-Type": "application/json"}
    )

    assert response.request.headers["content-length"] == str(len(content))
    assert_problem(response, 413)
    assert await container.users.count() == 0


async def test_streamed_body_over_the_limit_without_length_is_a_413_problem(
    client: httpx.AsyncClient, container: Container
) -> None:
    email = unique_email()
    content = oversized_registration(email)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 4096):
            yield content[start : start + 4096]

    request = client.build_request(
        "POST", "/api/v1/users", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    response = await client.send(request)

    assert_problem(response, 413)
    assert await container.users.count() == 0


async def test_streamed_body_under_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    email = unique_email()
    content = json.dumps({"email": email, "password": PASSWORD, "name": "Streamed"}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 16):
            yield content[start : start + 16]

    response = await client.post(
        "/api/v1/users", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 201, response.text
    assert response.json()["email"] == email


# --- Request ids -------------------------------------------------------------------


async def test_sane_client_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})

    assert response.status_code == 200
    assert response.headers["x-request-id"] == "abc-123"


async def test_sane_client_request_id_is_the_problem_request_id(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/no-such-thing", headers={"X-Request-ID": "abc-123"})

    body = assert_problem(response, 404)
    assert body["request_id"] == "abc-123"


@pytest.mark.parametrize(
    "offered",
    ["x" * 500, "a b", "<script>", "abc/../def"],
    ids=["too-long", "space", "markup", "slashes"],
)
async def test_insane_client_request_id_is_replaced_by_a_fresh_one(
    client: httpx.AsyncClient, offered: str
) -> None:
    response = await client.get("/api/v1/no-such-thing", headers={"X-Request-ID": offered})

    assert_problem(response, 404)
    assert response.headers["x-request-id"] != offered
    assert SANE_REQUEST_ID.match(response.headers["x-request-id"])
    assert offered not in response.text


async def test_fresh_request_ids_differ_between_requests(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")

    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/users/me", "/api/v1/no-such-thing"])
async def test_every_response_carries_exactly_one_request_id(
    client: httpx.AsyncClient, path: str
) -> None:
    ids = set()
    for _ in range(3):
        response = await client.get(path)
        values = response.headers.get_list("x-request-id")
        assert len(values) == 1, values
        assert re.fullmatch(r"[0-9a-f]{32}", values[0])
        ids.add(values[0])
    assert len(ids) == 3


@pytest.mark.parametrize(
    ("method", "path", "payload", "status"),
    [
        ("GET", "/healthz", None, 200),
        ("GET", "/api/v1/no-such-thing", None, 404),
        ("GET", "/api/v1/users/me", None, 401),
        ("POST", "/api/v1/users", {}, 422),
    ],
    ids=["200", "404", "401", "422"],
)
async def test_every_response_carries_a_request_id_matching_the_problem(
    client: httpx.AsyncClient, method: str, path: str, payload: object, status: int
) -> None:
    response = await client.request(method, path, json=payload)

    assert response.status_code == status
    request_id = response.headers["x-request-id"]
    assert SANE_REQUEST_ID.match(request_id)
    if status >= 400:
        assert assert_problem(response, status)["request_id"] == request_id


# --- Authentication errors ---------------------------------------------------------


async def test_missing_token_is_a_401_problem_with_www_authenticate(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/users/me")

    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_garbage_token_is_a_401_problem_with_www_authenticate(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/users/me", headers={"Authorization": "Bearer not-a-jwt"})

    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_wrong_password_is_a_401_problem_with_www_authenticate(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)

    response = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": "wrong password!"}
    )

    body = assert_problem(response, 401)
    assert body["detail"] == "Incorrect email or password"
    assert response.headers["www-authenticate"].startswith("Bearer")


# --- Operations --------------------------------------------------------------------


async def test_healthz_says_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200


async def test_jwks_publishes_public_rsa_signing_keys_only(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert key["kty"] == "RSA"
        assert key["alg"] == "RS256"
        assert key["use"] == "sig"
        assert key["kid"]
        assert key["n"]
        assert key["e"]
        assert not PRIVATE_JWK_MEMBERS & key.keys(), key.keys()


async def test_access_token_verifies_with_the_published_jwks(client: httpx.AsyncClient) -> None:
    user = await register(client)
    access_token = (await login(client, user["email"]))["access_token"]

    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    kid = jwt.get_unverified_header(access_token)["kid"]
    (jwk,) = [key for key in keys if key["kid"] == kid]
    claims = jwt.decode(
        access_token,
        jwt.PyJWK(jwk).key,
        algorithms=["RS256"],
        audience="accounts",
        issuer="accounts",
    )

    assert claims["sub"] == user["id"]


# --- Documentation -----------------------------------------------------------------


async def test_openapi_lists_the_rest_paths(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/v1/users", "/api/v1/users/{user_id}", "/api/v1/auth/token"} <= paths.keys()


async def test_openapi_has_an_oauth2_password_scheme_pointing_at_the_token_route(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()

    schemes = spec["components"]["securitySchemes"]
    password_schemes = {
        name: scheme
        for name, scheme in schemes.items()
        if scheme["type"] == "oauth2" and "password" in scheme.get("flows", {})
    }
    assert password_schemes, schemes
    for scheme in password_schemes.values():
        assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    me = spec["paths"]["/api/v1/users/me"]["get"]
    assert any(set(requirement) & password_schemes.keys() for requirement in me["security"])


async def test_docs_serve_swagger_ui(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text
    assert "/openapi.json" in response.text
