"""Signing key rotation: ``accounts keys rotate`` / ``keys list`` and what rotation means
for tokens already out there and for other instances on the same database.

A rotation makes a new key the signing key; the old one is retired, still published
and still verifying until every token it signed has expired. Another instance that
loaded the ring before the rotation meets the new ``kid`` and reloads the ring.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import jwt
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from accounts.bootstrap import Container
from accounts.http.app import create_app
from accounts.settings import Settings
from tests.conftest import make_settings
from tests.factories import account, bearer, login

COMMAND = [sys.executable, "-m", "accounts"]
CLI_SECONDS = 60
ME = "/api/v1/users/me"
JWKS = "/.well-known/jwks.json"


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield application, http


def container_of(app: FastAPI) -> Container:
    built: Container = app.state.container
    return built


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


async def published_kids(http: httpx.AsyncClient) -> list[str]:
    response = await http.get(JWKS)
    assert response.status_code == 200
    return [key["kid"] for key in response.json()["keys"]]


async def rotate(app: FastAPI) -> str:
    container = container_of(app)
    kid: str = await container.signing_keys.rotate(
        token_ttl_seconds=container.settings.access_token_ttl_seconds
    )
    return kid


def run_cli(*args: str, cwd: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ACCOUNTS_")}
    env["ACCOUNTS_DATABASE_URL"] = database_url
    return subprocess.run(  # noqa: S603
        [*COMMAND, *args],
        cwd=cwd,
        env=env,
        input="",
        capture_output=True,
        text=True,
        timeout=CLI_SECONDS,
        check=False,
    )


async def cli(*args: str, cwd: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, *args, cwd=cwd, database_url=database_url)


# --- rotation through the service ------------------------------------------------------------


async def test_a_token_issued_before_rotation_still_verifies_after_it(database_url: str) -> None:
    async with serving(make_settings(database_url)) as (app, http):
        user = await account(http)
        new_kid = await rotate(app)
        assert kid_of(user.access_token) != new_kid

        response = await http.get(ME, headers=user.headers)

    assert response.status_code == 200, response.text


async def test_tokens_issued_after_rotation_carry_the_new_kid(database_url: str) -> None:
    async with serving(make_settings(database_url)) as (app, http):
        user = await account(http)
        old_kid = kid_of(user.access_token)
        new_kid = await rotate(app)

        fresh = await login(http, user.email)
        response = await http.get(ME, headers=bearer(fresh["access_token"]))

    assert new_kid != old_kid
    assert kid_of(fresh["access_token"]) == new_kid
    assert response.status_code == 200


async def test_refreshed_tokens_carry_the_new_kid(database_url: str) -> None:
    async with serving(make_settings(database_url)) as (app, http):
        user = await account(http)
        new_kid = await rotate(app)

        refreshed = await http.post(
            "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
        )

    assert refreshed.status_code == 200, refreshed.text
    assert kid_of(refreshed.json()["access_token"]) == new_kid


async def test_the_jwks_lists_both_the_retired_and_the_new_key(database_url: str) -> None:
    async with serving(make_settings(database_url)) as (app, http):
        user = await account(http)
        old_kid = kid_of(user.access_token)
        new_kid = await rotate(app)

        kids = await published_kids(http)

    assert old_kid in kids
    assert new_kid in kids


async def test_a_token_signed_with_the_retired_key_verifies_with_the_published_jwks(
    database_url: str,
) -> None:
    """Another service verifying with a standard JWT library, from the JWKS alone."""
    async with serving(make_settings(database_url)) as (app, http):
        user = await account(http)
        await rotate(app)
        jwks = (await http.get(JWKS)).json()

    keys = {key["kid"]: key for key in jwks["keys"]}
    public_key = jwt.PyJWK(keys[kid_of(user.access_token)]).key
    claims = jwt.decode(
        user.access_token, public_key, algorithms=["RS256"], audience="accounts", issuer="accounts"
    )
    assert claims["sub"] == user.id


async def test_another_instance_accepts_tokens_signed_with_a_key_made_after_it_loaded(
    database_url: str,
) -> None:
    settings = make_settings(database_url)
    async with serving(settings) as (a_app, a), serving(settings) as (_, b):
        user = await account(a)
        assert (await b.get(ME, headers=user.headers)).status_code == 200
        new_kid = await rotate(a_app)
        assert new_kid not in await published_kids(b)

        fresh = await login(a, user.email)
        assert kid_of(fresh["access_token"]) == new_kid
        response = await b.get(ME, headers=bearer(fresh["access_token"]))

        assert response.status_code == 200, response.text
        assert new_kid in await published_kids(b)


# --- the command line ---------------------------------------------------------------------------


async def test_keys_rotate_makes_the_key_new_tokens_are_signed_with(
    database_url: str, tmp_path: Path
) -> None:
    async with serving(make_settings(database_url)) as (_, http):
        before = await account(http)

    rotated = await cli("keys", "rotate", cwd=tmp_path, database_url=database_url)
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.split("new signing key ", 1)[1].split(";", 1)[0].strip()

    async with serving(make_settings(database_url)) as (_, http):
        old_token_still_good = await http.get(ME, headers=before.headers)
        fresh = await login(http, before.email)
        kids = await published_kids(http)

    assert new_kid != kid_of(before.access_token)
    assert old_token_still_good.status_code == 200
    assert kid_of(fresh["access_token"]) == new_kid
    assert {new_kid, kid_of(before.access_token)} <= set(kids)


async def test_keys_list_marks_the_signing_key(database_url: str, tmp_path: Path) -> None:
    async with serving(make_settings(database_url)) as (_, http):
        old_kid = kid_of((await account(http)).access_token)
    rotated = await cli("keys", "rotate", cwd=tmp_path, database_url=database_url)
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.split("new signing key ", 1)[1].split(";", 1)[0].strip()

    listed = await cli("keys", "list", cwd=tmp_path, database_url=database_url)

    assert listed.returncode == 0, listed.stderr
    lines = [line.strip() for line in listed.stdout.splitlines() if line.strip()]
    assert f"{new_kid}  (signing)" in lines
    assert old_kid in lines
    assert [line for line in lines if line.endswith("(signing)")] == [f"{new_kid}  (signing)"]


async def test_keys_list_on_a_fresh_database_shows_one_signing_key(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    migrated = await cli("migrate", cwd=tmp_path, database_url=database_url)
    assert migrated.returncode == 0, migrated.stderr

    listed = await cli("keys", "list", cwd=tmp_path, database_url=database_url)

    assert listed.returncode == 0, listed.stderr
    lines = [line.strip() for line in listed.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].endswith("  (signing)")


async def test_a_running_instance_accepts_tokens_from_a_key_rotated_by_the_cli(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url)
    async with serving(settings) as (_, b):
        user = await account(b)
        rotated = await cli("keys", "rotate", cwd=tmp_path, database_url=database_url)
        assert rotated.returncode == 0, rotated.stderr
        # A second instance started after the rotation signs with the new key...
        async with serving(settings) as (_, a):
            fresh = await login(a, user.email)
        new_kid = rotated.stdout.split("new signing key ", 1)[1].split(";", 1)[0].strip()
        assert kid_of(fresh["access_token"]) == new_kid

        # ...and the instance that was already running accepts its tokens.
        response = await b.get(ME, headers=bearer(fresh["access_token"]))

    assert response.status_code == 200, response.text
