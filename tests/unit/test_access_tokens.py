"""The access-token codec and key ring in isolation: no database, no app."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from accounts.security.keys import RsaKey, generate_key, load_key, thumbprint
from accounts.security.tokens import (
    AccessClaims,
    AccessTokenCodec,
    InvalidAccessToken,
    KeyRing,
    UnknownKeyId,
)

ISSUER = "https://accounts.test"
AUDIENCE = "accounts-test"
TTL = 900
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

# RFC 7638, section 3.1: the example RSA key and its SHA-256 JWK thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
    "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
    "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_E = "AQAB"
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


# --- helpers ---------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64uint(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


def json_part(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def good_claims(**overrides: Any) -> dict[str, Any]:
    issued_at = int(now().timestamp())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "iat": issued_at,
        "exp": issued_at + TTL,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return claims


def rs256(key: RsaKey, claims: dict[str, Any], *, kid: str | None = None) -> str:
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": kid or key.kid})


# RSA key generation is slow; two keys serve the whole module.
@pytest.fixture(scope="module")
def key() -> RsaKey:
    return generate_key()


@pytest.fixture(scope="module")
def other_key() -> RsaKey:
    return generate_key()


@pytest.fixture
def ring(key: RsaKey) -> KeyRing:
    return KeyRing([key])


@pytest.fixture
def codec(ring: KeyRing) -> AccessTokenCodec:
    return AccessTokenCodec(ring, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=TTL)


# --- issue and verify ------------------------------------------------------------------


def test_issued_token_verifies_to_its_claims(codec: AccessTokenCodec) -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    issued_at = now()
    token = codec.issue(user_id, session_id, issued_at)

    claims = codec.verify(token)

    assert isinstance(claims, AccessClaims)
    assert claims.user_id == user_id
    assert claims.session_id == session_id
    expected_expiry = int(issued_at.timestamp()) + TTL
    assert claims.expires_at == dt.datetime.fromtimestamp(expected_expiry, dt.UTC)
    assert claims.token_id


def test_issued_token_has_the_documented_header_and_claims(
    codec: AccessTokenCodec, key: RsaKey
) -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    token = codec.issue(user_id, session_id, now())

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == key.kid
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {"iss", "aud", "sub", "sid", "iat", "exp", "jti"}
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == str(user_id)
    assert claims["sid"] == str(session_id)
    assert claims["exp"] - claims["iat"] == TTL


def test_each_issued_token_has_its_own_jti(codec: AccessTokenCodec) -> None:
    user_id, session_id, issued_at = uuid.uuid4(), uuid.uuid4(), now()
    first = codec.verify(codec.issue(user_id, session_id, issued_at))
    second = codec.verify(codec.issue(user_id, session_id, issued_at))
    assert first.token_id != second.token_id


def test_hand_signed_token_with_good_claims_verifies(codec: AccessTokenCodec, key: RsaKey) -> None:
    """The control for the forgeries below: the helpers themselves make valid tokens."""
    claims = good_claims()
    verified = codec.verify(rs256(key, claims))
    assert str(verified.user_id) == claims["sub"]
    assert str(verified.session_id) == claims["sid"]


def test_token_verifies_with_a_standard_library_and_the_public_jwk(
    codec: AccessTokenCodec, ring: KeyRing
) -> None:
    user_id = uuid.uuid4()
    token = codec.issue(user_id, uuid.uuid4(), now())
    key_set = jwt.PyJWKSet.from_dict(ring.jwks())
    claims = jwt.decode(
        token,
        key_set[jwt.get_unverified_header(token)["kid"]],
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
    )
    assert claims["sub"] == str(user_id)


# --- forgeries and invalid tokens -------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_token_is_rejected(codec: AccessTokenCodec, key: RsaKey, alg: str) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": key.kid}
    token = f"{json_part(header)}.{json_part(good_claims())}."
    with pytest.raises(InvalidAccessToken):
        codec.verify(token)


@pytest.mark.parametrize(
    "public_format",
    [serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1],
    ids=["spki-pem", "pkcs1-pem"],
)
def test_hs256_token_keyed_with_the_public_key_is_rejected(
    codec: AccessTokenCodec, key: RsaKey, public_format: serialization.PublicFormat
) -> None:
    pem = key.public_key.public_bytes(serialization.Encoding.PEM, public_format)
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{json_part(header)}.{json_part(good_claims())}"
    mac = hmac.new(pem, signing_input.encode("ascii"), hashlib.sha256).digest()
    with pytest.raises(InvalidAccessToken):
        codec.verify(f"{signing_input}.{b64url(mac)}")


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256"])
def test_token_signed_with_our_key_but_another_algorithm_is_rejected(
    codec: AccessTokenCodec, key: RsaKey, alg: str
) -> None:
    token = jwt.encode(good_claims(), key.private_key, algorithm=alg, headers={"kid": key.kid})
    with pytest.raises(InvalidAccessToken):
        codec.verify(token)


def test_token_signed_by_a_foreign_key_with_our_kid_is_rejected(
    codec: AccessTokenCodec, key: RsaKey
) -> None:
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(good_claims(), foreign, algorithm="RS256", headers={"kid": key.kid})
    with pytest.raises(InvalidAccessToken):
        codec.verify(token)


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        # Fixed ids: parameters must be the same in every pytest-xdist worker.
        ("sub", "6f0e9c1e-6a4b-4d0e-9b1a-2f6c1d3e4a5b"),
        ("sid", "0b3c2d1e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"),
        ("exp", 4_102_444_800),
        ("aud", "someone-else"),
    ],
)
def test_token_with_tampered_payload_is_rejected(
    codec: AccessTokenCodec, claim: str, value: Any
) -> None:
    token = codec.issue(uuid.uuid4(), uuid.uuid4(), now())
    header_part, payload_part, signature_part = token.split(".")
    payload = json.loads(b64url_decode(payload_part))
    payload[claim] = value
    with pytest.raises(InvalidAccessToken):
        codec.verify(f"{header_part}.{json_part(payload)}.{signature_part}")


def test_token_with_tampered_header_is_rejected(codec: AccessTokenCodec) -> None:
    token = codec.issue(uuid.uuid4(), uuid.uuid4(), now())
    header_part, payload_part, signature_part = token.split(".")
    header = json.loads(b64url_decode(header_part))
    header["typ"] = "at+jwt"
    with pytest.raises(InvalidAccessToken):
        codec.verify(f"{json_part(header)}.{payload_part}.{signature_part}")


def test_expired_token_is_rejected(codec: AccessTokenCodec) -> None:
    token = codec.issue(uuid.uuid4(), uuid.uuid4(), now() - dt.timedelta(seconds=TTL + 60))
    with pytest.raises(InvalidAccessToken):
        codec.verify(token)


def test_hand_signed_expired_token_is_rejected(codec: AccessTokenCodec, key: RsaKey) -> None:
    issued_at = int(now().timestamp()) - 3600
    token = rs256(key, good_claims(iat=issued_at, exp=issued_at + TTL))
    with pytest.raises(InvalidAccessToken):
        codec.verify(token)


@pytest.mark.parametrize("audience", ["someone-else", ["someone-else"], ""])
def test_token_for_another_audience_is_rejected(
    codec: AccessTokenCodec, key: RsaKey, audience: Any
) -> None:
    with pytest.raises(InvalidAccessToken):
        codec.verify(rs256(key, good_claims(aud=audience)))


def test_token_from_another_issuer_is_rejected(codec: AccessTokenCodec, key: RsaKey) -> None:
    with pytest.raises(InvalidAccessToken):
        codec.verify(rs256(key, good_claims(iss="https://evil.example")))


def test_codec_with_another_audience_rejects_our_tokens(
    codec: AccessTokenCodec, ring: KeyRing
) -> None:
    token = codec.issue(uuid.uuid4(), uuid.uuid4(), now())
    elsewhere = AccessTokenCodec(ring, issuer=ISSUER, audience="billing", ttl_seconds=TTL)
    with pytest.raises(InvalidAccessToken):
        elsewhere.verify(token)


def test_token_with_an_unknown_kid_raises_unknown_key_id(
    codec: AccessTokenCodec, key: RsaKey
) -> None:
    # Signed with the real key: only the kid lookup can refuse it.
    token = rs256(key, good_claims(), kid="not-a-key-we-know")
    with pytest.raises(UnknownKeyId):
        codec.verify(token)


def test_token_signed_by_a_key_not_in_the_ring_raises_unknown_key_id(
    codec: AccessTokenCodec, other_key: RsaKey
) -> None:
    with pytest.raises(UnknownKeyId):
        codec.verify(rs256(other_key, good_claims()))


def test_unknown_key_id_is_an_invalid_access_token() -> None:
    assert issubclass(UnknownKeyId, InvalidAccessToken)


@pytest.mark.parametrize("kid", [None, 42, ["x"]], ids=["absent", "number", "list"])
def test_token_without_a_string_kid_is_rejected(
    codec: AccessTokenCodec, key: RsaKey, kid: Any
) -> None:
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    # Signed by hand: PyJWT would insist on a string kid.
    signing_input = f"{json_part(header)}.{json_part(good_claims())}"
    signature = key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidAccessToken):
        codec.verify(f"{signing_input}.{b64url(signature)}")


@pytest.mark.parametrize("missing", ["iss", "aud", "sub", "sid", "iat", "exp", "jti"])
def test_token_missing_a_required_claim_is_rejected(
    codec: AccessTokenCodec, key: RsaKey, missing: str
) -> None:
    claims = good_claims()
    del claims[missing]
    with pytest.raises(InvalidAccessToken):
        codec.verify(rs256(key, claims))


@pytest.mark.parametrize(
    ("claim", "value"),
    [("sub", "not-a-uuid"), ("sid", "not-a-uuid"), ("sub", 12345), ("sid", "")],
)
def test_token_with_a_malformed_id_claim_is_rejected(
    codec: AccessTokenCodec, key: RsaKey, claim: str, value: Any
) -> None:
    with pytest.raises(InvalidAccessToken):
        codec.verify(rs256(key, good_claims(**{claim: value})))


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", 10**30),  # past any datetime: used to escape as OverflowError (a 500)
        ("exp", -(10**30)),
        ("exp", "4102444800"),  # a number in a string
        ("exp", 4102444800.5),
        ("exp", True),
        ("iat", "1700000000"),
        ("iat", 10**30),
    ],
    ids=[
        "exp-huge",
        "exp-hugely-negative",
        "exp-string",
        "exp-float",
        "exp-bool",
        "iat-string",
        "iat-huge",
    ],
)
def test_token_with_an_out_of_range_or_non_integer_time_claim_is_rejected(
    codec: AccessTokenCodec, key: RsaKey, claim: str, value: Any
) -> None:
    with pytest.raises(InvalidAccessToken):
        codec.verify(rs256(key, good_claims(**{claim: value})))


@pytest.mark.parametrize(
    "garbage",
    ["", "garbage", "a.b.c", "...", "eyJhbGciOiJSUzI1NiJ9.e30.", "x" * 600, "ä.ö.ü"],
    ids=["empty", "word", "abc", "dots", "empty-payload", "long", "non-ascii"],
)
def test_garbage_is_rejected(codec: AccessTokenCodec, garbage: str) -> None:
    with pytest.raises(InvalidAccessToken):
        codec.verify(garbage)


def test_opaque_refresh_token_is_not_an_access_token(codec: AccessTokenCodec) -> None:
    with pytest.raises(InvalidAccessToken):
        codec.verify(b64url(b"\x17" * 32))


# --- the key ring ----------------------------------------------------------------------


def test_newest_key_signs_and_older_keys_still_verify(key: RsaKey, other_key: RsaKey) -> None:
    ring = KeyRing([key])
    codec = AccessTokenCodec(ring, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=TTL)
    old_token = codec.issue(uuid.uuid4(), uuid.uuid4(), now())

    ring.replace([key, other_key])
    new_token = codec.issue(uuid.uuid4(), uuid.uuid4(), now())

    assert jwt.get_unverified_header(old_token)["kid"] == key.kid
    assert jwt.get_unverified_header(new_token)["kid"] == other_key.kid
    codec.verify(old_token)
    codec.verify(new_token)


def test_a_key_dropped_from_the_ring_no_longer_verifies(key: RsaKey, other_key: RsaKey) -> None:
    ring = KeyRing([key, other_key])
    codec = AccessTokenCodec(ring, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=TTL)
    token = rs256(key, good_claims())
    codec.verify(token)
    ring.replace([other_key])
    with pytest.raises(UnknownKeyId):
        codec.verify(token)


def test_empty_ring_cannot_sign() -> None:
    ring = KeyRing()
    assert ring.jwks() == {"keys": []}
    with pytest.raises(RuntimeError):
        _ = ring.signing_key


def test_jwks_publishes_every_public_key_and_no_private_part(
    key: RsaKey, other_key: RsaKey
) -> None:
    document = KeyRing([key, other_key]).jwks()
    assert [entry["kid"] for entry in document["keys"]] == [key.kid, other_key.kid]
    for entry, source in zip(document["keys"], [key, other_key], strict=True):
        assert not PRIVATE_JWK_MEMBERS & set(entry)
        assert set(entry) == {"kty", "n", "e", "kid", "use", "alg"}
        assert entry["kty"] == "RSA"
        assert entry["alg"] == "RS256"
        assert entry["use"] == "sig"
        numbers = source.public_key.public_numbers()
        assert b64uint(entry["n"]) == numbers.n
        assert b64uint(entry["e"]) == numbers.e
        # Minimal base64url encoding: no padding, no leading zero octet.
        assert "=" not in entry["n"]
        assert b64url_decode(entry["n"])[0] != 0
        assert entry["e"] == "AQAB"
    # The JSON serialisation, too, carries no private material.
    serialised = json.dumps(document)
    assert key.private_pem().splitlines()[1] not in serialised
    assert str(key.private_key.private_numbers().d) not in serialised


# --- keys and thumbprints ---------------------------------------------------------------


def test_thumbprint_matches_the_rfc7638_example() -> None:
    public_key = rsa.RSAPublicNumbers(b64uint(RFC7638_E), b64uint(RFC7638_N)).public_key()
    assert thumbprint(public_key) == RFC7638_THUMBPRINT


def test_generated_key_id_is_its_thumbprint(key: RsaKey) -> None:
    assert key.kid == thumbprint(key.public_key)
    assert key.public_key.key_size == 2048
    assert key.public_jwk()["kid"] == key.kid


def test_distinct_keys_have_distinct_ids(key: RsaKey, other_key: RsaKey) -> None:
    assert key.kid != other_key.kid


def test_private_pem_round_trips_to_the_same_key(key: RsaKey) -> None:
    loaded = load_key(key.private_pem())
    assert loaded.kid == key.kid
    assert loaded.public_key.public_numbers() == key.public_key.public_numbers()
