"""Attacks on authentication, on SQLite and PostgreSQL.

* tokens whose header points the verifier elsewhere (``jku``, ``x5u``, an embedded
  ``jwk``) or whose ``kid`` is path traversal or SQL: 401, never a 5xx, never a
  fetch or a lookup that answers;
* a refresh token presented as an access token (and the reverse): 401;
* an access token of a deleted user: 401, on REST and GraphQL, even after the
  address is registered again;
* login timing: an unknown email and a known email with a wrong password do the same
  work. Asserted structurally (the same argon2 verifications and the same SQL
  statements, attempt by attempt), never on the clock; the medians are printed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import statistics
import threading
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from accounts.bootstrap import Container
from accounts.security.keys import generate_key
from accounts.settings import Settings
from tests.conftest import make_settings
from tests.factories import PASSWORD, Account, account, bearer, register, superuser, unique_email
from tests.statement_log import StatementLog

ME_URL = "/api/v1/users/me"
LOGIN_URL = "/api/v1/auth/login"
ATTEMPTS = 30
ATTACKER = generate_key()


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The timing test logs in 60 times; the limits would answer with 429 first.
    return make_settings(database_url, rate_limits="off")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def claims_for(container: Container, victim: Account) -> dict[str, Any]:
    """Claims that would be good for the victim's live session: only the key is wrong."""
    live = jwt.decode(victim.access_token, options={"verify_signature": False})
    now = int(dt.datetime.now(dt.UTC).timestamp())
    return {
        "iss": container.settings.jwt_issuer,
        "aud": container.settings.jwt_audience,
        "sub": live["sub"],
        "sid": live["sid"],
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }


def attacker_signed(claims: dict[str, Any], headers: dict[str, Any]) -> str:
    """RS256 with the attacker's key, by hand: PyJWT will not put a non-string kid in."""
    header = {"alg": "RS256", "typ": "JWT", **headers}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = ATTACKER.private_key.sign(
        signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    return f"{signing_input}.{b64(signature)}"


def hand_signed(claims: dict[str, Any], header: dict[str, Any], key: bytes) -> str:
    """HS256 by hand (PyJWT refuses, rightly, to sign with an empty or short key)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def assert_rejected(client: httpx.AsyncClient, token: str, label: str) -> None:
    response = await client.get(ME_URL, headers=bearer(token))
    assert response.status_code == 401, (label, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), label
    assert response.headers["www-authenticate"] == "Bearer", label
    graphql = await client.post("/graphql", json={"query": "{ me { id } }"}, headers=bearer(token))
    assert graphql.status_code == 200, (label, graphql.text)
    codes = [error["extensions"]["code"] for error in graphql.json()["errors"]]
    assert codes == ["UNAUTHENTICATED"], (label, graphql.text)


# --- Header injection: jku, x5u, jwk, kid ---------------------------------------------------------

EVIL = "https://attacker.example/jwks.json"


def header_attacks(container: Container) -> list[tuple[str, dict[str, Any]]]:
    server_kid = container.key_ring.signing_key.kid
    return [
        ("jku to the attacker's key set", {"kid": ATTACKER.kid, "jku": EVIL}),
        ("jku with the server's kid", {"kid": server_kid, "jku": EVIL}),
        ("x5u to the attacker's certificate", {"kid": ATTACKER.kid, "x5u": EVIL}),
        ("x5u with the server's kid", {"kid": server_kid, "x5u": EVIL}),
        ("embedded jwk", {"kid": ATTACKER.kid, "jwk": ATTACKER.public_jwk()}),
        ("embedded jwk with the server's kid", {"kid": server_kid, "jwk": ATTACKER.public_jwk()}),
        ("no kid, embedded jwk", {"jwk": ATTACKER.public_jwk()}),
    ]


KID_ATTACKS: list[Any] = [
    "../../etc/passwd",
    "../../../../../../dev/null",
    "/dev/null",
    "' OR '1'='1",
    "' UNION SELECT private_key_pem FROM signing_keys --",
    "kid\x00",
    "{{7*7}}",
    "x" * 10_000,
    "",
    123,
    ["a"],
    {"kid": "a"},
    None,
]


async def test_tokens_whose_header_points_elsewhere_are_rejected(
    client: httpx.AsyncClient, container: Container
) -> None:
    victim = await account(client)
    claims = claims_for(container, victim)
    for label, headers in header_attacks(container):
        await assert_rejected(client, attacker_signed(claims, headers), label)
    # The victim's own token still works: the refusals are about the forged ones.
    assert (await client.get(ME_URL, headers=victim.headers)).status_code == 200


async def test_kids_with_path_traversal_or_sql_are_rejected(
    client: httpx.AsyncClient, container: Container
) -> None:
    victim = await account(client)
    claims = claims_for(container, victim)
    for kid in KID_ATTACKS:
        label = f"kid={kid!r}"[:80]
        await assert_rejected(client, attacker_signed(claims, {"kid": kid}), label)
        # The classic: HS256 keyed with the (empty) content of the file the kid names.
        for key in (b"", b"\n"):
            token = hand_signed(claims, {"alg": "HS256", "typ": "JWT", "kid": kid}, key)
            await assert_rejected(client, token, f"HS256 {label}")
    none_token = f"{b64(json.dumps({'alg': 'none', 'kid': '/dev/null'}).encode())}."
    await assert_rejected(client, none_token + b64(json.dumps(claims).encode()) + ".", "alg none")
    assert (await client.get(ME_URL, headers=victim.headers)).status_code == 200


async def test_kid_probing_does_not_reveal_signing_keys(
    client: httpx.AsyncClient, container: Container
) -> None:
    victim = await account(client)
    claims = claims_for(container, victim)
    pems = [key.private_pem() for key in [container.key_ring.signing_key]]
    for kid in KID_ATTACKS:
        response = await client.get(ME_URL, headers=bearer(attacker_signed(claims, {"kid": kid})))
        assert response.status_code == 401
        for pem in pems:
            assert pem[40:80] not in response.text
        assert "signing_keys" not in response.text
        assert "Traceback" not in response.text


# --- Token confusion ------------------------------------------------------------------------------


async def test_a_refresh_token_is_not_an_access_token(client: httpx.AsyncClient) -> None:
    user = await account(client)
    await assert_rejected(client, user.refresh_token, "refresh token as bearer")
    # ... nor the reverse.
    response = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": user.access_token[:512]}
    )
    assert response.status_code in {401, 422}, response.text
    # Neither attempt spent or revoked anything: the real pair still works.
    assert (await client.get(ME_URL, headers=user.headers)).status_code == 200
    again = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert again.status_code == 200, again.text


# --- Deleted users --------------------------------------------------------------------------------


async def test_an_access_token_of_a_user_who_deleted_themself_is_rejected(
    client: httpx.AsyncClient,
) -> None:
    user = await account(client)
    assert (await client.delete(ME_URL, headers=user.headers)).status_code == 204

    await assert_rejected(client, user.access_token, "deleted user's token")
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refresh.status_code == 401, refresh.text
    # The address is free again; the old token does not become the new account's.
    await register(client, email=user.email)
    await assert_rejected(client, user.access_token, "deleted user's token, address reused")


async def test_an_access_token_of_a_user_deleted_by_a_superuser_is_rejected(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    user = await account(client)
    assert (await client.get(ME_URL, headers=user.headers)).status_code == 200  # cached now

    deleted = await client.delete(f"/api/v1/users/{user.id}", headers=admin.headers)
    assert deleted.status_code == 204, deleted.text

    await assert_rejected(client, user.access_token, "token of a user deleted by an admin")


# --- Login timing: the same work for an unknown email and a wrong password ----------------------


class RecordingArgon2:
    """The real argon2 hasher, counting what it is asked to do (thread-safe: it runs
    in the hasher's thread pool)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.verifications = 0
        self.hashes = 0

    def verify(self, password_hash: str, password: str) -> bool:
        with self._lock:
            self.verifications += 1
        result: bool = self._inner.verify(password_hash, password)
        return result

    def hash(self, password: str) -> str:
        with self._lock:
            self.hashes += 1
        result: str = self._inner.hash(password)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_unknown_email_and_wrong_password_do_the_same_work(
    client: httpx.AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await register(client)
    argon2 = RecordingArgon2(container.hasher._argon2)
    monkeypatch.setattr(container.hasher, "_argon2", argon2)
    log = StatementLog()
    work: dict[str, list[tuple[int, int, tuple[str, ...]]]] = {"unknown": [], "known": []}
    seconds: dict[str, list[float]] = {"unknown": [], "known": []}

    with log.listening(container.database):
        for attempt in range(ATTEMPTS):
            # Interleaved, so that warm-up and drift fall on both paths alike.
            for path in ("unknown", "known") if attempt % 2 else ("known", "unknown"):
                email = unique_email("nobody") if path == "unknown" else user["email"]
                log.statements.clear()
                verifications, hashes = argon2.verifications, argon2.hashes
                started = time.perf_counter()
                response = await client.post(
                    LOGIN_URL, json={"email": email, "password": "not the password"}
                )
                seconds[path].append(time.perf_counter() - started)
                assert response.status_code == 401, response.text
                assert response.json()["detail"] == "Incorrect email or password"
                work[path].append(
                    (
                        argon2.verifications - verifications,
                        argon2.hashes - hashes,
                        tuple(log.statements),
                    )
                )

    # Every attempt on either path: exactly one full argon2 verification, no hashing...
    for path, attempts in work.items():
        assert {(verified, hashed) for verified, hashed, _ in attempts} == {(1, 0)}, path
    # ... and the very same SQL, statement for statement.
    unknown_sql = {statements for _, _, statements in work["unknown"]}
    known_sql = {statements for _, _, statements in work["known"]}
    assert len(unknown_sql) == 1, unknown_sql
    assert unknown_sql == known_sql, (unknown_sql, known_sql)
    (statements,) = known_sql
    assert any("FROM users" in statement for statement in statements), statements
    assert any("INSERT INTO audit_events" in statement for statement in statements), statements

    # Reported, never asserted: wall-clock time is not a test signal here.
    print(
        "\nlogin timing over",
        ATTEMPTS,
        "attempts each: median unknown email",
        f"{statistics.median(seconds['unknown']) * 1000:.1f} ms,",
        "median known email + wrong password",
        f"{statistics.median(seconds['known']) * 1000:.1f} ms",
    )


async def test_a_right_password_is_verified_once_too(
    client: httpx.AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorder sees the real verifications: the right password is one as well."""
    user = await register(client)
    argon2 = RecordingArgon2(container.hasher._argon2)
    monkeypatch.setattr(container.hasher, "_argon2", argon2)
    response = await client.post(LOGIN_URL, json={"email": user["email"], "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert argon2.verifications == 1
