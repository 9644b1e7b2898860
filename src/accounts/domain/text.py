"""Rules shared by every free-text value: what characters may ever be stored."""

from __future__ import annotations

import unicodedata

# Cc: control characters (NUL included); Cs: lone surrogates, which JSON can carry
# ("\ud800") but UTF-8 cannot encode, so the database would refuse them later.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs"})


def has_forbidden_characters(value: str, *, allow_controls: bool = False) -> bool:
    """True when ``value`` holds a lone surrogate, or a control character unless allowed."""
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs" or (category in _FORBIDDEN_CATEGORIES and not allow_controls):
            return True
    return False
