"""REST authentication: login, tokens, refresh rotation, logout, and what is refused.

Forged tokens are built here by hand (or signed with the server's own key where the
point is that some *other* check must refuse them); each of those has a positive
control, ``test_token_signed_with_the_server_key_for_a_live_session_is_accepted``,
which proves the forging helpers make otherwise valid tokens.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from accounts.bootstrap import Container
from accounts.http.app import create_app
from accounts.services.users import UserChanges
from accounts.settings import Settings
from tests.factories import PASSWORD, account, bearer, login, register, superuser

TOKEN_URL = "/api/v1/auth/token"
LOGIN_URL = "/api/v1/auth/login"
REFRESH_URL = "/api/v1/auth/refresh"
LOGOUT_URL = "/api/v1/auth/logout"
ME_URL = "/api/v1/users/me"
JWKS_URL = "/.well-known/jwks.json"
PROBLEM_JSON = "application/problem+json"
DEFAULT_ACCESS_TTL = 900


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    # conftest's ``app`` yields LifespanManager.app, which asgi-lifespan 2.x wraps in
    # a state middleware (a plain function), so conftest's ``container`` cannot reach
    # ``app.state`` through it. Yield the FastAPI app itself, its lifespan running.
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


# --- helpers ---------------------------------------------------------------------------


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == 401
    assert body["request_id"] == response.headers["x-request-id"]


def assert_token_pair(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == DEFAULT_ACCESS_TTL
    assert isinstance(body["access_token"], str)
    assert body["access_token"].count(".") == 2
    assert isinstance(body["refresh_token"], str)
    assert body["refresh_token"]
    return body


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def json_part(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unverified_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def claims_like(container: Container, token: str, **overrides: Any) -> dict[str, Any]:
    """Fresh, correct claims for the session ``token`` belongs to, then ``overrides``."""
    issued = unverified_claims(token)
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims: dict[str, Any] = {
        "iss": container.settings.jwt_issuer,
        "aud": container.settings.jwt_audience,
        "sub": issued["sub"],
        "sid": issued["sid"],
        "iat": now,
        "exp": now + DEFAULT_ACCESS_TTL,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return claims


def server_signed(container: Container, claims: dict[str, Any], *, kid: str | None = None) -> str:
    """A token signed RS256 with the server's own signing key."""
    key = container.key_ring.signing_key
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": kid or key.kid})


async def me_status(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get(ME_URL, headers=bearer(token))).status_code


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(REFRESH_URL, json={"refresh_token": refresh_token})


class RecordingArgon2:
    """Wraps the real argon2 hasher, recording the hash of every verification it runs."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.verified: list[str] = []

    def verify(self, password_hash: str, password: str) -> bool:
        self.verified.append(password_hash)
        result: bool = self._inner.verify(password_hash, password)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# --- logging in ------------------------------------------------------------------------


async def test_token_endpoint_accepts_the_oauth2_password_form(client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await client.post(
        TOKEN_URL,
        data={"grant_type": "password", "username": user["email"], "password": PASSWORD},
    )
    pair = assert_token_pair(response)
    assert await me_status(client, pair["access_token"]) == 200


async def test_token_endpoint_accepts_the_form_without_grant_type(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client)
    response = await client.post(TOKEN_URL, data={"username": user["email"], "password": PASSWORD})
    assert_token_pair(response)


@pytest.mark.parametrize("grant_type", ["client_credentials", "refresh_token", "Password"])
async def test_token_endpoint_refuses_a_grant_other_than_password(
    client: httpx.AsyncClient, grant_type: str
) -> None:
    user = await register(client)
    response = await client.post(
        TOKEN_URL,
        data={"grant_type": grant_type, "username": user["email"], "password": PASSWORD},
    )
    assert response.status_code == 422, response.text
    assert ["body", "grant_type"] in [error["loc"] for error in response.json()["errors"]]


async def test_login_with_json_returns_a_token_pair(client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await client.post(LOGIN_URL, json={"email": user["email"], "password": PASSWORD})
    pair = assert_token_pair(response)
    me = await client.get(ME_URL, headers=bearer(pair["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


async def test_login_is_case_insensitive_on_email(client: httpx.AsyncClient) -> None:
    user = await register(client)
    assert user["email"] == user["email"].lower()
    shouted = user["email"].upper()

    by_json = await client.post(LOGIN_URL, json={"email": shouted, "password": PASSWORD})
    by_form = await client.post(TOKEN_URL, data={"username": shouted, "password": PASSWORD})

    for response in (by_json, by_form):
        pair = assert_token_pair(response)
        assert unverified_claims(pair["access_token"])["sub"] == user["id"]


async def test_each_login_starts_its_own_session(client: httpx.AsyncClient) -> None:
    user = await register(client)
    first = await login(client, user["email"])
    second = await login(client, user["email"])
    assert first["refresh_token"] != second["refresh_token"]
    first_claims = unverified_claims(first["access_token"])
    second_claims = unverified_claims(second["access_token"])
    assert first_claims["sid"] != second_claims["sid"]
    assert first_claims["jti"] != second_claims["jti"]


@pytest.mark.parametrize("url", [LOGIN_URL, TOKEN_URL])
async def test_unknown_email_and_wrong_password_get_the_same_401(
    client: httpx.AsyncClient, url: str
) -> None:
    user = await register(client)

    async def attempt(email: str, password: str) -> httpx.Response:
        if url == LOGIN_URL:
            return await client.post(url, json={"email": email, "password": password})
        return await client.post(url, data={"username": email, "password": password})

    wrong_password = await attempt(user["email"], "not the password at all")
    unknown_email = await attempt("nobody-here@example.com", PASSWORD)

    for response in (wrong_password, unknown_email):
        assert_unauthorized(response)
        assert response.json()["detail"] == "Incorrect email or password"

    def without_request_id(response: httpx.Response) -> dict[str, Any]:
        body: dict[str, Any] = response.json()
        body.pop("request_id")
        return body

    assert without_request_id(wrong_password) == without_request_id(unknown_email)
    assert wrong_password.headers["www-authenticate"] == unknown_email.headers["www-authenticate"]
    assert wrong_password.headers["content-type"] == unknown_email.headers["content-type"]


async def test_unknown_email_login_still_runs_one_full_cost_argon2_verification(
    client: httpx.AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await register(client)
    recorder = RecordingArgon2(container.hasher._argon2)
    monkeypatch.setattr(container.hasher, "_argon2", recorder)

    wrong = await client.post(LOGIN_URL, json={"email": user["email"], "password": "wrong pass"})
    assert_unauthorized(wrong)
    assert len(recorder.verified) == 1
    user_hash = recorder.verified[0]

    unknown = await client.post(
        LOGIN_URL, json={"email": "nobody-here@example.com", "password": "wrong pass"}
    )
    assert_unauthorized(unknown)
    # The unknown email cost exactly what the wrong password cost: one real argon2id
    # verification, against a hash made with the same (current) parameters.
    assert len(recorder.verified) == 2
    dummy_hash = recorder.verified[1]
    assert dummy_hash != user_hash
    assert dummy_hash.startswith("$argon2id$")
    assert dummy_hash.split("$")[:4] == user_hash.split("$")[:4]
    assert not container.hasher.needs_rehash(dummy_hash)


async def test_verify_without_a_hash_runs_argon2_and_never_matches(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = RecordingArgon2(container.hasher._argon2)
    monkeypatch.setattr(container.hasher, "_argon2", recorder)

    assert not await container.hasher.verify(None, "dummy password for timing equalisation")
    assert not await container.hasher.verify(None, PASSWORD)
    assert len(recorder.verified) == 2
    assert all(hashed.startswith("$argon2id$") for hashed in recorder.verified)


# --- inactive users --------------------------------------------------------------------


async def test_inactive_user_gets_403_only_after_a_correct_password(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await container.users.create("root@example.com", PASSWORD, "Root", is_superuser=True)
    user = await register(client)
    await container.users.update(admin, uuid.UUID(user["id"]), UserChanges(is_active=False))

    right = await client.post(LOGIN_URL, json={"email": user["email"], "password": PASSWORD})
    assert right.status_code == 403, right.text
    assert right.headers["content-type"].startswith(PROBLEM_JSON)
    assert right.json()["status"] == 403

    wrong = await client.post(LOGIN_URL, json={"email": user["email"], "password": "wrong pass"})
    assert_unauthorized(wrong)
    assert wrong.json()["detail"] == "Incorrect email or password"

    form_right = await client.post(
        TOKEN_URL, data={"username": user["email"], "password": PASSWORD}
    )
    assert form_right.status_code == 403
    form_wrong = await client.post(
        TOKEN_URL, data={"username": user["email"], "password": "wrong pass"}
    )
    assert_unauthorized(form_wrong)


async def test_deactivation_by_a_superuser_cuts_off_existing_sessions(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    victim = await account(client)
    response = await client.patch(
        f"/api/v1/users/{victim.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False

    assert_unauthorized(await client.get(ME_URL, headers=victim.headers))
    assert_unauthorized(await refresh(client, victim.refresh_token))
    relogin = await client.post(LOGIN_URL, json={"email": victim.email, "password": PASSWORD})
    assert relogin.status_code == 403
    # The admin's own session is untouched.
    assert await me_status(client, admin.access_token) == 200


# --- the access token ------------------------------------------------------------------


async def test_access_token_has_the_documented_header_and_claims(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    header = jwt.get_unverified_header(ada.access_token)
    assert header["alg"] == "RS256"
    jwks = (await client.get(JWKS_URL)).json()
    assert header["kid"] in {key["kid"] for key in jwks["keys"]}

    claims = unverified_claims(ada.access_token)
    assert set(claims) >= {"iss", "aud", "sub", "sid", "iat", "exp", "jti"}
    assert claims["iss"] == container.settings.jwt_issuer
    assert claims["aud"] == container.settings.jwt_audience
    assert claims["sub"] == ada.id
    assert str(uuid.UUID(claims["sid"])) == claims["sid"]
    assert claims["exp"] - claims["iat"] == DEFAULT_ACCESS_TTL
    now = dt.datetime.now(dt.UTC).timestamp()
    assert abs(claims["iat"] - now) < 60
    assert isinstance(claims["jti"], str)
    assert claims["jti"]


async def test_access_token_verifies_with_only_the_jwks_and_pyjwt(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    response = await client.get(JWKS_URL)
    assert response.status_code == 200
    document = response.json()
    for key in document["keys"]:
        assert key["kty"] == "RSA"
        assert key["alg"] == "RS256"
        assert key["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)

    # What another service does: pick the key by kid from the published set and verify.
    key_set = jwt.PyJWKSet.from_dict(document)
    kid = jwt.get_unverified_header(ada.access_token)["kid"]
    claims = jwt.decode(
        ada.access_token,
        key_set[kid],
        algorithms=["RS256"],
        audience=container.settings.jwt_audience,
        issuer=container.settings.jwt_issuer,
        options={"require": ["iss", "aud", "sub", "sid", "iat", "exp", "jti"]},
    )
    assert claims["sub"] == ada.id

    # The same with a single PyJWK built from the matching entry.
    entry = next(key for key in document["keys"] if key["kid"] == kid)
    single = jwt.PyJWK.from_dict(entry)
    assert (
        jwt.decode(
            ada.access_token,
            single,
            algorithms=["RS256"],
            audience=container.settings.jwt_audience,
            issuer=container.settings.jwt_issuer,
        )
        == claims
    )


# --- refresh ---------------------------------------------------------------------------


async def test_refresh_returns_a_new_working_pair_in_the_same_session(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    pair = assert_token_pair(await refresh(client, ada.refresh_token))
    assert pair["refresh_token"] != ada.refresh_token
    assert pair["access_token"] != ada.access_token

    me = await client.get(ME_URL, headers=bearer(pair["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == ada.id
    assert (
        unverified_claims(pair["access_token"])["sid"] == unverified_claims(ada.access_token)["sid"]
    )
    # The new refresh token can itself be spent.
    assert_token_pair(await refresh(client, pair["refresh_token"]))


async def test_refresh_token_is_single_use(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    assert_token_pair(await refresh(client, ada.refresh_token))
    assert_unauthorized(await refresh(client, ada.refresh_token))


async def test_spent_refresh_token_revokes_session(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    other_session = await login(client, ada.email)
    newest = assert_token_pair(await refresh(client, ada.refresh_token))

    # Someone replays the spent token: theft.
    assert_unauthorized(await refresh(client, ada.refresh_token))

    # The whole session is gone: its newest refresh token and all its access tokens.
    assert_unauthorized(await refresh(client, newest["refresh_token"]))
    assert_unauthorized(await client.get(ME_URL, headers=bearer(newest["access_token"])))
    assert_unauthorized(await client.get(ME_URL, headers=ada.headers))

    # Another session of the same user is not affected.
    assert await me_status(client, other_session["access_token"]) == 200
    assert_token_pair(await refresh(client, other_session["refresh_token"]))


async def test_unknown_refresh_token_is_401(client: httpx.AsyncClient) -> None:
    await account(client)
    assert_unauthorized(await refresh(client, "this-is-not-a-refresh-token"))
    assert_unauthorized(await refresh(client, b64url(b"\x00" * 32)))


async def test_refresh_responses_are_not_cacheable(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    response = await refresh(client, ada.refresh_token)
    assert response.headers["cache-control"] == "no-store"


# --- logout ----------------------------------------------------------------------------


async def test_logout_with_refresh_token_revokes_its_session(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    response = await client.post(LOGOUT_URL, json={"refresh_token": ada.refresh_token})
    assert response.status_code == 204
    assert response.content == b""

    assert_unauthorized(await client.get(ME_URL, headers=ada.headers))
    assert_unauthorized(await refresh(client, ada.refresh_token))


async def test_logout_with_bearer_token_only_revokes_its_session(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    response = await client.post(LOGOUT_URL, headers=ada.headers)
    assert response.status_code == 204

    assert_unauthorized(await client.get(ME_URL, headers=ada.headers))
    assert_unauthorized(await refresh(client, ada.refresh_token))


async def test_logout_without_any_credential_is_401(client: httpx.AsyncClient) -> None:
    assert_unauthorized(await client.post(LOGOUT_URL))


async def test_logout_with_an_unknown_refresh_token_is_401(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    assert_unauthorized(
        await client.post(LOGOUT_URL, json={"refresh_token": "no-such-refresh-token"})
    )
    assert await me_status(client, ada.access_token) == 200


async def test_logout_with_a_revoked_bearer_token_is_401(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    assert (await client.post(LOGOUT_URL, headers=ada.headers)).status_code == 204
    assert_unauthorized(await client.post(LOGOUT_URL, headers=ada.headers))


async def test_logout_leaves_other_sessions_of_the_user_alive(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    laptop = await login(client, ada.email)
    phone = await login(client, ada.email)

    by_refresh = await client.post(LOGOUT_URL, json={"refresh_token": ada.refresh_token})
    assert by_refresh.status_code == 204
    by_bearer = await client.post(LOGOUT_URL, headers=bearer(laptop["access_token"]))
    assert by_bearer.status_code == 204

    assert await me_status(client, ada.access_token) == 401
    assert await me_status(client, laptop["access_token"]) == 401
    assert await me_status(client, phone["access_token"]) == 200
    assert_token_pair(await refresh(client, phone["refresh_token"]))


# --- forged and invalid access tokens ---------------------------------------------------


async def test_token_signed_with_the_server_key_for_a_live_session_is_accepted(
    client: httpx.AsyncClient, container: Container
) -> None:
    """The control for the forgeries below: the helpers themselves make valid tokens."""
    ada = await account(client)
    token = server_signed(container, claims_like(container, ada.access_token))
    assert await me_status(client, token) == 200


async def test_alg_none_token_is_rejected(client: httpx.AsyncClient, container: Container) -> None:
    ada = await account(client)
    claims = claims_like(container, ada.access_token)
    for alg in ("none", "None", "NONE"):
        header = {"alg": alg, "typ": "JWT", "kid": container.key_ring.signing_key.kid}
        token = f"{json_part(header)}.{json_part(claims)}."
        assert_unauthorized(await client.get(ME_URL, headers=bearer(token)))


async def test_hs256_token_keyed_with_the_public_key_is_rejected(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    claims = claims_like(container, ada.access_token)
    public_key = container.key_ring.signing_key.public_key
    pems = [
        public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
    ]
    header = {"alg": "HS256", "typ": "JWT", "kid": container.key_ring.signing_key.kid}
    for pem in pems:
        signing_input = f"{json_part(header)}.{json_part(claims)}"
        mac = hmac.new(pem, signing_input.encode("ascii"), hashlib.sha256).digest()
        token = f"{signing_input}.{b64url(mac)}"
        assert_unauthorized(await client.get(ME_URL, headers=bearer(token)))


async def test_token_signed_by_a_foreign_key_with_the_server_kid_is_rejected(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        claims_like(container, ada.access_token),
        foreign,
        algorithm="RS256",
        headers={"kid": container.key_ring.signing_key.kid},
    )
    assert_unauthorized(await client.get(ME_URL, headers=bearer(token)))


async def test_token_with_tampered_payload_is_rejected(client: httpx.AsyncClient) -> None:
    mallory = await account(client)
    ada = await account(client)
    header_part, payload_part, signature_part = mallory.access_token.split(".")
    payload = json.loads(b64url_decode(payload_part))
    # Mallory points her own, validly signed token at Ada's live session: only the
    # signature stands in the way.
    victim = unverified_claims(ada.access_token)
    payload["sub"] = victim["sub"]
    payload["sid"] = victim["sid"]
    tampered = f"{header_part}.{json_part(payload)}.{signature_part}"
    assert_unauthorized(await client.get(ME_URL, headers=bearer(tampered)))
    # Untampered, both tokens still work.
    assert await me_status(client, mallory.access_token) == 200
    assert await me_status(client, ada.access_token) == 200


async def test_token_with_extended_expiry_keeping_the_signature_is_rejected(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    header_part, payload_part, signature_part = ada.access_token.split(".")
    payload = json.loads(b64url_decode(payload_part))
    payload["exp"] += 365 * 24 * 3600
    tampered = f"{header_part}.{json_part(payload)}.{signature_part}"
    assert_unauthorized(await client.get(ME_URL, headers=bearer(tampered)))


async def test_expired_access_token_is_rejected(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = claims_like(container, ada.access_token, iat=now - 2000, exp=now - 1100)
    token = server_signed(container, claims)
    assert_unauthorized(await client.get(ME_URL, headers=bearer(token)))


@pytest.mark.parametrize(
    "exp", [10**30, "4102444800", 4102444800.5], ids=["huge", "string", "float"]
)
async def test_token_with_an_exp_that_is_no_timestamp_is_rejected(
    client: httpx.AsyncClient, container: Container, exp: object
) -> None:
    ada = await account(client)
    # A huge exp used to escape as OverflowError: a 500 for a token signed by our key.
    token = server_signed(container, claims_like(container, ada.access_token, exp=exp))
    assert_unauthorized(await client.get(ME_URL, headers=bearer(token)))


async def test_token_for_another_audience_is_rejected(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    for audience in ("some-other-service", ["some-other-service"]):
        token = server_signed(container, claims_like(container, ada.access_token, aud=audience))
        assert_unauthorized(await client.get(ME_URL, headers=bearer(token)))


async def test_token_from_another_issuer_is_rejected(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    token = server_signed(
        container, claims_like(container, ada.access_token, iss="https://evil.example")
    )
    assert_unauthorized(await client.get(ME_URL, headers=bearer(token)))


async def test_token_with_an_unknown_kid_is_rejected(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    # Signed with the real key: only the kid lookup can refuse it.
    token = server_signed(
        container, claims_like(container, ada.access_token), kid="not-a-key-we-know"
    )
    assert_unauthorized(await client.get(ME_URL, headers=bearer(token)))


@pytest.mark.parametrize(
    "missing", ["iss", "aud", "sub", "sid", "iat", "exp", "jti"], ids=lambda claim: claim
)
async def test_token_missing_a_required_claim_is_rejected(
    client: httpx.AsyncClient, container: Container, missing: str
) -> None:
    ada = await account(client)
    claims = claims_like(container, ada.access_token)
    del claims[missing]
    assert_unauthorized(await client.get(ME_URL, headers=bearer(server_signed(container, claims))))


@pytest.mark.parametrize(
    "garbage",
    ["garbage", "a.b.c", "...", "eyJhbGciOiJSUzI1NiJ9.e30.", "Bearer", "x" * 600],
    ids=["word", "three-dots-parts", "only-dots", "empty-payload", "bearer-word", "long"],
)
async def test_garbage_bearer_token_is_rejected(client: httpx.AsyncClient, garbage: str) -> None:
    assert_unauthorized(await client.get(ME_URL, headers=bearer(garbage)))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic Zm9vOmJhcg=="},
    ],
    ids=["absent", "empty", "bearer-without-token", "basic-scheme"],
)
async def test_missing_bearer_token_is_rejected(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    assert_unauthorized(await client.get(ME_URL, headers=headers))


async def test_refresh_token_used_as_a_bearer_token_is_rejected(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    assert_unauthorized(await client.get(ME_URL, headers=bearer(ada.refresh_token)))
    # Still a good refresh token afterwards: nothing was spent or revoked.
    assert_token_pair(await refresh(client, ada.refresh_token))


@pytest.mark.parametrize("endpoint", [REFRESH_URL, LOGOUT_URL])
async def test_an_access_token_sent_as_a_refresh_token_gets_401(
    client: httpx.AsyncClient, endpoint: str
) -> None:
    ada = await account(client)
    # Longer than any refresh token we issue: once a 422 naming the length, now what
    # it is, a token that is not ours.
    assert len(ada.access_token) > 512
    response = await client.post(endpoint, json={"refresh_token": ada.access_token})
    assert_unauthorized(response)
    assert response.json()["detail"] == "Invalid refresh token."
    # The session was neither spent nor revoked.
    assert_token_pair(await refresh(client, ada.refresh_token))


# --- account changes that end sessions --------------------------------------------------


async def test_deleted_user_tokens_are_rejected(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    elsewhere = await login(client, ada.email)
    response = await client.delete(ME_URL, headers=ada.headers)
    assert response.status_code == 204

    assert_unauthorized(await client.get(ME_URL, headers=ada.headers))
    assert_unauthorized(await refresh(client, ada.refresh_token))
    assert_unauthorized(await client.get(ME_URL, headers=bearer(elsewhere["access_token"])))
    assert_unauthorized(await refresh(client, elsewhere["refresh_token"]))
    assert_unauthorized(
        await client.post(LOGIN_URL, json={"email": ada.email, "password": PASSWORD})
    )


async def test_deleted_user_token_is_rejected_even_when_validly_signed(
    client: httpx.AsyncClient, container: Container
) -> None:
    ada = await account(client)
    claims = claims_like(container, ada.access_token)
    assert (await client.delete(ME_URL, headers=ada.headers)).status_code == 204
    # A freshly signed token naming the erased user and session.
    assert_unauthorized(await client.get(ME_URL, headers=bearer(server_signed(container, claims))))


async def test_password_change_revokes_other_sessions_but_keeps_the_current_one(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    other = await login(client, ada.email)
    new_password = "an entirely new passphrase"

    response = await client.post(
        f"{ME_URL}/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=ada.headers,
    )
    assert response.status_code == 204, response.text

    # The other session is gone, both its tokens.
    assert_unauthorized(await client.get(ME_URL, headers=bearer(other["access_token"])))
    assert_unauthorized(await refresh(client, other["refresh_token"]))

    # The session that changed the password goes on.
    assert await me_status(client, ada.access_token) == 200
    assert_token_pair(await refresh(client, ada.refresh_token))

    # And the credentials really changed.
    assert_unauthorized(
        await client.post(LOGIN_URL, json={"email": ada.email, "password": PASSWORD})
    )
    await login(client, ada.email, new_password)


async def test_password_change_leaves_other_users_sessions_alone(
    client: httpx.AsyncClient,
) -> None:
    ada = await account(client)
    grace = await account(client)
    response = await client.post(
        f"{ME_URL}/password",
        json={"current_password": PASSWORD, "new_password": "an entirely new passphrase"},
        headers=ada.headers,
    )
    assert response.status_code == 204
    assert await me_status(client, grace.access_token) == 200
    assert_token_pair(await refresh(client, grace.refresh_token))


async def test_a_logout_with_an_unknown_token_does_not_wait_for_a_writer(
    client: httpx.AsyncClient, container: Container
) -> None:
    # A write transaction is open: on SQLite it holds this process's writer turn, and a
    # logout that took a write transaction to look its token up waited behind it.
    async with container.uow(write=True) as uow:
        response = await asyncio.wait_for(
            client.post(LOGOUT_URL, json={"refresh_token": "never-issued-" + "x" * 40}),
            timeout=5,
        )
        await uow.commit()
    assert response.status_code == 401, response.text
