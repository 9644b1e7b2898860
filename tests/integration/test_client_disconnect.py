"""A client that goes away mid-request is not a server error."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI


async def _call_and_disconnect(app: FastAPI, path: str) -> list[dict[str, Any]]:
    """Send request headers, then disconnect instead of sending the body."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("path", ["/graphql", "/api/v1/auth/login", "/api/v1/users"])
async def test_client_disconnect_mid_body_is_not_a_500(
    app: FastAPI, path: str, capfd: pytest.CaptureFixture[str]
) -> None:
    sent = await _call_and_disconnect(app, path)
    statuses = [message["status"] for message in sent if message["type"] == "http.response.start"]
    assert 500 not in statuses
    captured = capfd.readouterr()
    assert "unhandled error" not in captured.err + captured.out
