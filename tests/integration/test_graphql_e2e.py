"""GraphQL end to end: a real GraphQL client library (gql, over httpx) talking HTTP to
``accounts serve`` started by the test on a free loopback port, on its own SQLite file."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport

from tests.factories import PASSWORD
from tests.servers import free_port, scrubbed_env

STARTUP_SECONDS = 30
SHUTDOWN_SECONDS = 15

REGISTER = gql(
    """
    mutation Register($email: String!, $password: String!, $name: String!) {
      register(email: $email, password: $password, name: $name) { id email name isActive }
    }
    """
)
LOGIN = gql(
    """
    mutation Login($email: String!, $password: String!) {
      login(email: $email, password: $password) { accessToken tokenType expiresIn refreshToken }
    }
    """
)
ME = gql("query Me { me { id email name isSuperuser createdAt } }")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``accounts serve`` in an empty working directory; yields its GraphQL URL."""
    tmp_path = tmp_path_factory.mktemp("graphql-e2e")
    workdir = tmp_path / "work"
    workdir.mkdir()
    log = tmp_path / "server.log"
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "accounts", "serve", "--port", str(port)],
            cwd=workdir,
            env=scrubbed_env(),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_healthy(process, base_url, log)
        yield f"{base_url}/graphql"
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=SHUTDOWN_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=SHUTDOWN_SECONDS)


def wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    """Poll /healthz until 200, the process exits, or STARTUP_SECONDS pass."""
    deadline = time.monotonic() + STARTUP_SECONDS
    with httpx.Client(base_url=base_url, timeout=2) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = log.read_text(errors="replace")[-4000:]
                pytest.fail(f"server exited with {process.returncode}:\n{output}")
            try:
                if http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    output = log.read_text(errors="replace")[-4000:]
    pytest.fail(f"server did not answer /healthz within {STARTUP_SECONDS} s:\n{output}")


def with_variables(request: GraphQLRequest, **variables: Any) -> GraphQLRequest:
    return GraphQLRequest(request, variable_values=variables)


async def test_a_graphql_client_registers_logs_in_and_reads_me(server: str) -> None:
    email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    # fetch_schema_from_transport: gql introspects the server and validates every
    # operation against the schema before sending it.
    anonymous = Client(
        transport=HTTPXAsyncTransport(url=server, timeout=30), fetch_schema_from_transport=True
    )
    async with anonymous as session:
        registered = await session.execute(
            with_variables(REGISTER, email=email, password=PASSWORD, name="End To End")
        )
        pair = (await session.execute(with_variables(LOGIN, email=email, password=PASSWORD)))[
            "login"
        ]

    assert registered["register"]["email"] == email
    assert registered["register"]["isActive"] is True
    assert pair["tokenType"] == "bearer"
    assert pair["expiresIn"] > 0

    authenticated = Client(
        transport=HTTPXAsyncTransport(
            url=server, timeout=30, headers={"Authorization": f"Bearer {pair['accessToken']}"}
        )
    )
    async with authenticated as session:
        me = (await session.execute(ME))["me"]

    assert me["id"] == registered["register"]["id"]
    assert me["email"] == email
    assert me["name"] == "End To End"
    assert me["isSuperuser"] is False


async def test_a_graphql_client_sees_error_codes(server: str) -> None:
    email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    client = Client(transport=HTTPXAsyncTransport(url=server, timeout=30))
    async with client as session:
        with pytest.raises(TransportQueryError) as unauthenticated:
            await session.execute(ME)
        await session.execute(with_variables(REGISTER, email=email, password=PASSWORD, name="A"))
        with pytest.raises(TransportQueryError) as taken:
            await session.execute(
                with_variables(REGISTER, email=email.upper(), password=PASSWORD, name="B")
            )

    assert unauthenticated.value.errors is not None
    [error] = unauthenticated.value.errors
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["path"] == ["me"]
    assert taken.value.errors is not None
    assert [error["extensions"]["code"] for error in taken.value.errors] == ["EMAIL_TAKEN"]
