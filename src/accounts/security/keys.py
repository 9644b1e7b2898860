"""RSA signing keys: generation, serialisation, and RFC 7638 thumbprints as key ids."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

RSA_KEY_BITS = 2048


@dataclass(frozen=True, slots=True)
class RsaKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def private_pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    def public_jwk(self) -> dict[str, Any]:
        return {
            **_public_numbers_jwk(self.public_key),
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
        }


def _b64uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _public_numbers_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {"e": _b64uint(numbers.e), "kty": "RSA", "n": _b64uint(numbers.n)}


def thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """The RFC 7638 JWK thumbprint: a key id that is derived from the key itself."""
    canonical = json.dumps(_public_numbers_jwk(public_key), separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def generate_key() -> RsaKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    return RsaKey(kid=thumbprint(private_key.public_key()), private_key=private_key)


def load_key(private_pem: str) -> RsaKey:
    private_key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ValueError("signing key is not an RSA key")
    return RsaKey(kid=thumbprint(private_key.public_key()), private_key=private_key)
