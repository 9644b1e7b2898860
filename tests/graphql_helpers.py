"""Reading GraphQL responses in tests."""

from __future__ import annotations

from typing import Any


def data_of(body: dict[str, Any]) -> dict[str, Any]:
    """The data of a response that must have no errors."""
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def the_error(body: dict[str, Any]) -> dict[str, Any]:
    """The single error of a response, checked for shape."""
    errors = body.get("errors")
    assert errors is not None, body
    assert len(errors) == 1, errors
    error: dict[str, Any] = errors[0]
    assert isinstance(error["message"], str)
    assert error["message"]
    return error
