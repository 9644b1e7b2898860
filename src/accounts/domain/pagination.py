"""Keyset pagination: sort orders, opaque cursors and pages.

A cursor names the last row a client saw by its sort key and id, so the next page
is ``WHERE (key, id) > (:key, :id)`` over an index: its cost does not grow with
depth, unlike ``OFFSET``. Cursors are base64url JSON; they carry the sort order
they were made for and are refused under another one.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from accounts.domain.errors import InvalidCursor

T = TypeVar("T")
# Enough for the longest email key (400 characters of UTF-8, base64-encoded).
CURSOR_MAX_LENGTH = 2048


class UserSort(enum.StrEnum):
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    EMAIL = "email"
    EMAIL_DESC = "-email"

    @property
    def descending(self) -> bool:
        return self.value.startswith("-")

    @property
    def field(self) -> str:
        return self.value.lstrip("-")


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a sorted list: the sort it belongs to, and the last row's key and id."""

    sort: str
    key: str
    id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps(
            [self.sort, self.key, str(self.id)], separators=(",", ":"), ensure_ascii=False
        )
        # surrogatepass: a hand-made key with a lone surrogate still encodes, and
        # decode() refuses it (the service never mints one).
        encoded = raw.encode("utf-8", "surrogatepass")
        return base64.urlsafe_b64encode(encoded).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, token: str, *, sort: str) -> Cursor:
        if len(token) > CURSOR_MAX_LENGTH:
            raise InvalidCursor()
        try:
            padded = token + "=" * (-len(token) % 4)
            raw = base64.urlsafe_b64decode(padded.encode("ascii"))
            cursor_sort, key, row_id = json.loads(raw)
            cursor = cls(sort=str(cursor_sort), key=str(key), id=uuid.UUID(str(row_id)))
        except (ValueError, TypeError, binascii.Error, UnicodeError):
            raise InvalidCursor() from None
        if cursor.sort != sort:
            raise InvalidCursor("The cursor belongs to another sort order.")
        return cursor


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; ``next_cursor`` is None on the last page."""

    items: Sequence[T]
    total: int
    skip: int
    limit: int
    next_cursor: str | None
