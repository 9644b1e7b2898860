"""Cryptography: password hashing, the signing key ring and access tokens, opaque tokens."""
