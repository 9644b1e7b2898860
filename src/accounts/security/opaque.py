"""Opaque random tokens (refresh tokens, email links) and their stored hashes."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32  # 256 bits


def new_token() -> str:
    """A URL-safe random token of 256 bits."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """SHA-256 hex of a token: what is stored, so a database leak reveals no usable token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
