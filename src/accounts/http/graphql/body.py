"""The body of a GraphQL request over HTTP: what Strawberry's view may assume of it.

Strawberry's view decodes the body and then reads it as a JSON object (``data.get``)
without checking that it is one: a body of ``null``, ``"str"``, a number or a boolean
raised ``AttributeError`` there, a 500. The router decodes with ``parse_json`` below,
so that whatever Strawberry goes on to read is an object (or a list, which it refuses
itself as a batch), and checks the one member Strawberry passes on unchecked,
``operationName``. Anything else is a 400 problem, as ``{}`` is.

A body whose strings are not text (a lone surrogate, which JSON can spell as
``"\ud800"`` but UTF-8 cannot carry) is malformed wherever the string is: echoed back in
"Unknown operation named ..." it made the problem renderer raise ``TypeError``.

Nesting is bounded too. Strawberry's ``json.loads`` recursed once per level and
raised ``RecursionError`` (a 500) near a thousand; orjson stops at 1,024 itself, but a
value nested that deep still breaks whatever recurses over it later (``repr``, a
log line). No request of this API nests deeper than four levels (the request, its
variables, an input object, a value), so more than ``MAX_NESTING`` is refused.
"""

from __future__ import annotations

from typing import Any

import orjson
from cross_web import HTTPException
from strawberry.http import GraphQLRequestData

NOT_JSON = "Unable to parse request body as JSON"  # Strawberry's own words for it
NOT_AN_OBJECT = "The GraphQL request must be a JSON object."
MAX_NESTING = 32
TOO_DEEP = f"The GraphQL request nests more than {MAX_NESTING} levels deep."
# Worded as Strawberry words its own checks of ``query`` and ``variables``.
BAD_OPERATION_NAME = (
    "The GraphQL operation's `operationName` must be a string or null, if provided."
)


def parse_json(data: str | bytes) -> dict[str, Any] | list[Any]:
    """A decoded request (or, in a GET, its variables): an object or a list.

    Raises:
        HTTPException: 400, when it is not JSON, not an object or a list, or nested
            more than ``MAX_NESTING`` levels deep.
    """
    try:
        # orjson, not Strawberry's json.loads, which lets lone surrogates through to
        # the problem renderer, the logs and the database.
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise HTTPException(400, NOT_JSON) from None
    if not isinstance(value, dict | list):
        raise HTTPException(400, NOT_AN_OBJECT)
    if not _nests_within(value, MAX_NESTING):
        raise HTTPException(400, TOO_DEEP)
    return value


def _nests_within(value: dict[str, Any] | list[Any], levels: int) -> bool:
    """Whether ``value`` has at most ``levels`` levels of arrays and objects, found
    without recursion (walking a too-deep value recursively is what must not happen)."""
    pending: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if level > levels:
            return False
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return True


def check_operation_name(request: GraphQLRequestData) -> None:
    """Raises: HTTPException: 400, an ``operationName`` that is not a string or null
    (Strawberry would look it up as it is: 'Unknown operation named "5"')."""
    if not isinstance(request.operation_name, str | None):
        raise HTTPException(400, BAD_OPERATION_NAME)
