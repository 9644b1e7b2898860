"""Ids as clients write them: UUIDs in the canonical 8-4-4-4-12 hyphenated form."""

from __future__ import annotations

import re
import uuid

# uuid.UUID() also takes "{...}", "urn:uuid:...", and 32 digits without hyphens; a
# client that sends those has a bug we should tell it about, and each id should have
# one spelling (in logs, in caches, in URLs). Hex digits in either case (RFC 9562).
_CANONICAL = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def parse_id(text: str) -> uuid.UUID:
    """The UUID ``text`` spells in canonical form.

    Raises:
        ValueError: ``text`` is not a UUID in the 8-4-4-4-12 hyphenated form.
    """
    if not _CANONICAL.fullmatch(text):
        raise ValueError("not a UUID in canonical hyphenated form")
    return uuid.UUID(text)
