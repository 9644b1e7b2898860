"""Rate limits over REST (and GraphQL's share of them), on both database backends.

Each test builds its own app with small limits through settings, exactly as an
operator would configure them, and drives it over HTTP. The client address an app
sees is the ASGI peer (``httpx.ASGITransport(client=...)``); X-Forwarded-For is
only believed from ACCOUNTS_TRUSTED_PROXIES. With no Redis configured the limits
live in-process (the embedded default).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from accounts.http.app import create_app
from accounts.settings import Settings, SettingsError, load_settings
from tests.conftest import SmtpSink, make_settings
from tests.factories import PASSWORD, bearer, login, register, unique_email
from tests.lifecycle_helpers import reset_mail

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
USERS = "/api/v1/users"
SESSIONS = "/api/v1/auth/sessions"
RESET_REQUEST = "/api/v1/auth/password-reset/request"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"
PROBLEM_JSON = "application/problem+json"
WRONG_PASSWORD = "not the right passphrase"
NEW_PASSWORD = "a brand new passphrase"
PROXY = "127.0.0.1"  # httpx.ASGITransport's default peer address
GRAPHQL_LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { accessToken }
}
"""

Smtp = tuple[SmtpSink, int]


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@asynccontextmanager
async def client_of(app: FastAPI, peer: str = PROXY) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose requests reach ``app`` from the socket address ``peer``."""
    transport = httpx.ASGITransport(app=app, client=(peer, 51000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@asynccontextmanager
async def serving(settings: Settings, peer: str = PROXY) -> AsyncIterator[httpx.AsyncClient]:
    async with running(settings) as app, client_of(app, peer) as http:
        yield http


def forwarded(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def attempt(
    http: httpx.AsyncClient,
    email: str,
    password: str = PASSWORD,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await http.post(LOGIN, json={"email": email, "password": password}, headers=headers)


def assert_rate_limited(response: httpx.Response, limit: int, window_seconds: int) -> None:
    """A 429 problem with Retry-After and the RateLimit-* headers, within the window."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == 429
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= window_seconds
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"
    reset = response.headers["ratelimit-reset"]
    assert reset.isdigit(), reset
    assert 1 <= int(reset) <= window_seconds


# --- login per (IP, email) -----------------------------------------------------------


async def test_the_fourth_login_for_one_ip_and_email_is_429_with_rate_limit_headers(
    database_url: str,
) -> None:
    settings = make_settings(database_url, rate_limit_login_per_ip_email="3/minute")
    async with serving(settings) as http:
        user = await register(http)
        for _ in range(3):
            assert (await attempt(http, user["email"])).status_code == 200

        refused = await attempt(http, user["email"])

    assert_rate_limited(refused, limit=3, window_seconds=60)


async def test_failed_logins_count_toward_the_ip_and_email_limit(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_login_per_ip_email="3/minute")
    async with serving(settings) as http:
        user = await register(http)
        for _ in range(3):
            assert (await attempt(http, user["email"], WRONG_PASSWORD)).status_code == 401

        # Even the right password is refused now: the limit is checked first.
        refused = await attempt(http, user["email"])

    assert_rate_limited(refused, limit=3, window_seconds=60)


async def test_the_ip_and_email_limit_ignores_the_email_letter_case(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_login_per_ip_email="2/minute")
    async with serving(settings) as http:
        user = await register(http)
        email = user["email"]
        assert (await attempt(http, email.upper())).status_code == 200
        assert (await attempt(http, email)).status_code == 200

        refused = await attempt(http, email.title())

    assert_rate_limited(refused, limit=2, window_seconds=60)


async def test_another_email_from_the_same_ip_is_still_allowed(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_login_per_ip_email="3/minute")
    async with serving(settings) as http:
        first = await register(http)
        second = await register(http)
        for _ in range(3):
            assert (await attempt(http, first["email"])).status_code == 200
        assert (await attempt(http, first["email"])).status_code == 429

        other = await attempt(http, second["email"])

    assert other.status_code == 200, other.text


async def test_the_same_email_from_another_ip_is_still_allowed(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_login_per_ip_email="2/minute")
    async with (
        running(settings) as app,
        client_of(app, "10.0.0.5") as first,
        client_of(app, "10.0.0.6") as second,
    ):
        user = await register(first)
        for _ in range(2):
            assert (await attempt(first, user["email"])).status_code == 200
        assert (await attempt(first, user["email"])).status_code == 429

        elsewhere = await attempt(second, user["email"])

    assert elsewhere.status_code == 200, elsewhere.text


# --- login per IP ----------------------------------------------------------------------


async def test_the_per_ip_login_limit_counts_every_email(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_login_per_ip="3/minute")
    async with running(settings) as app, client_of(app, "10.0.0.5") as http:
        for _ in range(3):
            assert (await attempt(http, unique_email())).status_code == 401

        refused = await attempt(http, unique_email())

    assert_rate_limited(refused, limit=3, window_seconds=60)


async def test_the_per_ip_login_limit_leaves_other_ips_alone(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_login_per_ip="3/minute")
    async with (
        running(settings) as app,
        client_of(app, "10.0.0.5") as noisy,
        client_of(app, "10.0.0.6") as quiet,
    ):
        user = await register(quiet)
        for _ in range(3):
            assert (await attempt(noisy, unique_email())).status_code == 401
        assert (await attempt(noisy, unique_email())).status_code == 429

        other = await attempt(quiet, user["email"])

    assert other.status_code == 200, other.text


async def test_the_token_endpoint_shares_the_login_limits(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_login_per_ip_email="2/minute")
    async with serving(settings) as http:
        user = await register(http)
        for _ in range(2):
            assert (await attempt(http, user["email"])).status_code == 200

        refused = await http.post(
            "/api/v1/auth/token", data={"username": user["email"], "password": PASSWORD}
        )

    assert_rate_limited(refused, limit=2, window_seconds=60)


# --- registration, refresh and email requests --------------------------------------------


async def test_registration_is_limited_per_ip(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_register_per_ip="2/hour")
    async with (
        running(settings) as app,
        client_of(app, "10.0.0.5") as http,
        client_of(app, "10.0.0.6") as other,
    ):
        for _ in range(2):
            await register(http)
        refused = await http.post(
            USERS, json={"email": unique_email(), "password": PASSWORD, "name": "Third"}
        )
        elsewhere = await other.post(
            USERS, json={"email": unique_email(), "password": PASSWORD, "name": "Other"}
        )

    assert_rate_limited(refused, limit=2, window_seconds=3600)
    assert elsewhere.status_code == 201, elsewhere.text


async def test_a_refused_registration_creates_no_account(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_register_per_ip="1/hour")
    async with serving(settings) as http:
        await register(http)
        email = unique_email()
        refused = await http.post(USERS, json={"email": email, "password": PASSWORD, "name": "X"})
        assert refused.status_code == 429

        attempted = await attempt(http, email)

    assert attempted.status_code == 401, attempted.text


async def test_refresh_is_limited_per_ip(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_refresh_per_ip="2/minute")
    async with serving(settings) as http:
        user = await register(http)
        refresh_token = (await login(http, user["email"]))["refresh_token"]
        for _ in range(2):
            response = await http.post(REFRESH, json={"refresh_token": refresh_token})
            assert response.status_code == 200, response.text
            refresh_token = response.json()["refresh_token"]

        refused = await http.post(REFRESH, json={"refresh_token": refresh_token})

    assert_rate_limited(refused, limit=2, window_seconds=60)


async def test_a_refused_refresh_leaves_the_refresh_token_unspent(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_refresh_per_ip="1/minute")
    async with (
        running(settings) as app,
        client_of(app, "10.0.0.5") as http,
        client_of(app, "10.0.0.6") as other,
    ):
        user = await register(http)
        first = (await login(http, user["email"]))["refresh_token"]
        second = (await http.post(REFRESH, json={"refresh_token": first})).json()
        refused = await http.post(REFRESH, json={"refresh_token": second["refresh_token"]})
        assert refused.status_code == 429

        # Not counted as spent (nor as reuse): it still works once the limit allows.
        later = await other.post(REFRESH, json={"refresh_token": second["refresh_token"]})

    assert later.status_code == 200, later.text


async def test_password_reset_requests_are_limited_per_ip(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_email_requests_per_ip="2/hour")
    async with serving(settings) as http:
        for _ in range(2):
            accepted = await http.post(RESET_REQUEST, json={"email": unique_email()})
            assert accepted.status_code == 202, accepted.text

        refused = await http.post(RESET_REQUEST, json={"email": unique_email()})

    assert_rate_limited(refused, limit=2, window_seconds=3600)


async def test_password_reset_requests_are_limited_per_account_across_ips(
    database_url: str,
) -> None:
    settings = make_settings(
        database_url, rate_limit_email_requests_per_account="2/hour", trusted_proxies=PROXY
    )
    email = unique_email()
    async with serving(settings) as http:
        for number in range(2):
            accepted = await http.post(
                RESET_REQUEST, json={"email": email}, headers=forwarded(f"198.51.100.{number}")
            )
            assert accepted.status_code == 202, accepted.text

        refused = await http.post(
            RESET_REQUEST, json={"email": email.upper()}, headers=forwarded("198.51.100.77")
        )

    assert_rate_limited(refused, limit=2, window_seconds=3600)


async def test_verification_email_requests_are_limited_per_account(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_email_requests_per_account="2/hour")
    async with serving(settings) as http:
        user = await register(http)
        token = (await login(http, user["email"]))["access_token"]
        for _ in range(2):
            accepted = await http.post("/api/v1/auth/verify-email/request", headers=bearer(token))
            assert accepted.status_code == 202, accepted.text

        refused = await http.post("/api/v1/auth/verify-email/request", headers=bearer(token))

    assert_rate_limited(refused, limit=2, window_seconds=3600)


# --- the defaults and the off switch -------------------------------------------------------


def test_the_contract_limits_are_the_default_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (
        "ACCOUNTS_RATE_LIMITS",
        "ACCOUNTS_RATE_LIMIT_LOGIN_PER_IP_EMAIL",
        "ACCOUNTS_RATE_LIMIT_LOGIN_PER_IP",
        "ACCOUNTS_RATE_LIMIT_REGISTER_PER_IP",
        "ACCOUNTS_RATE_LIMIT_REFRESH_PER_IP",
    ):
        monkeypatch.delenv(variable, raising=False)

    settings = Settings(_env_file=None)

    assert settings.rate_limits == "on"
    assert settings.rate_limit_login_per_ip_email == "10/minute"
    assert settings.rate_limit_login_per_ip == "60/minute"
    assert settings.rate_limit_register_per_ip == "20/hour"
    assert settings.rate_limit_refresh_per_ip == "60/minute"


def test_every_limit_is_read_from_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = {
        "ACCOUNTS_RATE_LIMITS": "off",
        "ACCOUNTS_RATE_LIMIT_LOGIN_PER_IP_EMAIL": "1/second",
        "ACCOUNTS_RATE_LIMIT_LOGIN_PER_IP": "2/second",
        "ACCOUNTS_RATE_LIMIT_FAILED_LOGINS_PER_ACCOUNT": "3/second",
        "ACCOUNTS_RATE_LIMIT_REGISTER_PER_IP": "4/second",
        "ACCOUNTS_RATE_LIMIT_REFRESH_PER_IP": "5/second",
        "ACCOUNTS_RATE_LIMIT_EMAIL_REQUESTS_PER_IP": "6/second",
        "ACCOUNTS_RATE_LIMIT_EMAIL_REQUESTS_PER_ACCOUNT": "7/second",
    }
    for variable, value in values.items():
        monkeypatch.setenv(variable, value)

    settings = Settings(_env_file=None)

    for variable, value in values.items():
        assert getattr(settings, variable.removeprefix("ACCOUNTS_").lower()) == value


def test_a_malformed_limit_is_refused_naming_the_setting() -> None:
    with pytest.raises(SettingsError, match="ACCOUNTS_RATE_LIMIT_LOGIN_PER_IP"):
        load_settings(_env_file=None, rate_limit_login_per_ip="lots")


async def test_by_default_the_eleventh_login_for_one_ip_and_email_is_429(
    database_url: str,
) -> None:
    async with serving(make_settings(database_url)) as http:
        user = await register(http)
        for _ in range(10):
            assert (await attempt(http, user["email"])).status_code == 200

        refused = await attempt(http, user["email"])

    assert_rate_limited(refused, limit=10, window_seconds=60)


async def test_by_default_the_sixty_first_login_from_one_ip_is_429(database_url: str) -> None:
    async with running(make_settings(database_url)) as app, client_of(app, "10.0.0.5") as http:
        for _ in range(60):
            assert (await attempt(http, unique_email())).status_code == 401

        refused = await attempt(http, unique_email())

    assert_rate_limited(refused, limit=60, window_seconds=60)


async def test_by_default_the_twenty_first_registration_from_one_ip_is_429(
    database_url: str,
) -> None:
    async with serving(make_settings(database_url)) as http:
        for _ in range(20):
            await register(http)

        refused = await http.post(
            USERS, json={"email": unique_email(), "password": PASSWORD, "name": "One Too Many"}
        )

    assert_rate_limited(refused, limit=20, window_seconds=3600)


async def test_by_default_the_sixty_first_refresh_from_one_ip_is_429(database_url: str) -> None:
    async with serving(make_settings(database_url)) as http:
        user = await register(http)
        refresh_token = (await login(http, user["email"]))["refresh_token"]
        for _ in range(60):
            response = await http.post(REFRESH, json={"refresh_token": refresh_token})
            assert response.status_code == 200, response.text
            refresh_token = response.json()["refresh_token"]

        refused = await http.post(REFRESH, json={"refresh_token": refresh_token})

    assert_rate_limited(refused, limit=60, window_seconds=60)


async def test_rate_limits_off_disables_every_limit(database_url: str) -> None:
    settings = make_settings(
        database_url,
        rate_limits="off",
        rate_limit_login_per_ip_email="1/hour",
        rate_limit_login_per_ip="1/hour",
        rate_limit_failed_logins_per_account="1/hour",
        rate_limit_register_per_ip="1/hour",
        rate_limit_refresh_per_ip="1/hour",
        rate_limit_email_requests_per_ip="1/hour",
        rate_limit_email_requests_per_account="1/hour",
    )
    statuses: list[int] = []
    async with serving(settings) as http:
        users = [await register(http) for _ in range(4)]
        email = users[0]["email"]
        for _ in range(4):
            statuses.append((await attempt(http, email, WRONG_PASSWORD)).status_code)
        for _ in range(4):
            statuses.append((await attempt(http, email)).status_code)
        for other in users[1:]:
            statuses.append((await attempt(http, other["email"])).status_code)
        pair = await login(http, email)
        refresh_token = pair["refresh_token"]
        for _ in range(4):
            response = await http.post(REFRESH, json={"refresh_token": refresh_token})
            statuses.append(response.status_code)
            refresh_token = response.json()["refresh_token"]
        for _ in range(4):
            response = await http.post(RESET_REQUEST, json={"email": email})
            statuses.append(response.status_code)
        for _ in range(4):
            response = await http.post(
                "/api/v1/auth/verify-email/request", headers=bearer(pair["access_token"])
            )
            statuses.append(response.status_code)

    assert 429 not in statuses
    assert statuses == [401] * 4 + [200] * 4 + [200] * 3 + [200] * 4 + [202] * 4 + [202] * 4


# --- client address: the socket peer, X-Forwarded-For only from trusted proxies ---------


async def test_x_forwarded_for_from_an_untrusted_peer_does_not_escape_the_limit(
    database_url: str,
) -> None:
    settings = make_settings(database_url, rate_limit_login_per_ip="3/minute")
    async with serving(settings, peer="10.0.0.5") as http:
        for number in range(3):
            response = await attempt(http, unique_email(), headers=forwarded(f"203.0.113.{number}"))
            assert response.status_code == 401

        refused = await attempt(http, unique_email(), headers=forwarded("203.0.113.200"))

    assert_rate_limited(refused, limit=3, window_seconds=60)


async def test_an_untrusted_x_forwarded_for_is_not_recorded_as_the_session_ip(
    database_url: str,
) -> None:
    async with serving(make_settings(database_url), peer="10.0.0.5") as http:
        user = await register(http)
        response = await attempt(http, user["email"], headers=forwarded("203.0.113.9"))
        token = response.json()["access_token"]
        sessions = await http.get(SESSIONS, headers=bearer(token))

    assert sessions.status_code == 200, sessions.text
    assert [session["ip"] for session in sessions.json()] == ["10.0.0.5"]


async def test_a_peer_outside_the_trusted_proxies_is_not_believed(database_url: str) -> None:
    settings = make_settings(
        database_url, rate_limit_login_per_ip="2/minute", trusted_proxies="10.1.0.0/16"
    )
    async with serving(settings, peer="10.2.0.7") as http:
        for number in range(2):
            response = await attempt(http, unique_email(), headers=forwarded(f"203.0.113.{number}"))
            assert response.status_code == 401

        refused = await attempt(http, unique_email(), headers=forwarded("203.0.113.99"))

    assert_rate_limited(refused, limit=2, window_seconds=60)


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(
    database_url: str,
) -> None:
    settings = make_settings(
        database_url, rate_limit_login_per_ip="2/minute", trusted_proxies=PROXY
    )
    async with serving(settings) as http:
        for _ in range(2):
            response = await attempt(http, unique_email(), headers=forwarded("203.0.113.1"))
            assert response.status_code == 401
        refused = await attempt(http, unique_email(), headers=forwarded("203.0.113.1"))

        other = await attempt(http, unique_email(), headers=forwarded("203.0.113.2"))

    assert_rate_limited(refused, limit=2, window_seconds=60)
    assert other.status_code == 401, other.text


async def test_behind_a_trusted_proxy_the_session_ip_is_the_forwarded_client(
    database_url: str,
) -> None:
    async with serving(make_settings(database_url, trusted_proxies=PROXY)) as http:
        user = await register(http)
        response = await attempt(http, user["email"], headers=forwarded("203.0.113.9"))
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]

        sessions = await http.get(SESSIONS, headers=bearer(token))

    assert sessions.status_code == 200, sessions.text
    assert [session["ip"] for session in sessions.json()] == ["203.0.113.9"]


async def test_addresses_a_client_prepends_to_x_forwarded_for_are_not_believed(
    database_url: str,
) -> None:
    settings = make_settings(
        database_url, rate_limit_login_per_ip="2/minute", trusted_proxies=PROXY
    )
    async with serving(settings) as http:
        # The proxy appends the address it saw; whatever is further left the client wrote.
        for number in range(2):
            spoofed = forwarded(f"192.0.2.{number}, 203.0.113.1")
            assert (await attempt(http, unique_email(), headers=spoofed)).status_code == 401

        refused = await attempt(http, unique_email(), headers=forwarded("192.0.2.200, 203.0.113.1"))

    assert_rate_limited(refused, limit=2, window_seconds=60)


async def test_a_chain_of_trusted_proxies_is_skipped_to_find_the_client(
    database_url: str,
) -> None:
    settings = make_settings(database_url, trusted_proxies="127.0.0.1, 10.9.0.0/16")
    async with serving(settings) as http:
        user = await register(http)
        response = await attempt(
            http, user["email"], headers=forwarded("192.0.2.1, 203.0.113.5, 10.9.0.3")
        )
        token = response.json()["access_token"]
        sessions = await http.get(SESSIONS, headers=bearer(token))

    assert [session["ip"] for session in sessions.json()] == ["203.0.113.5"]


# --- the per-account failed-login limit ------------------------------------------------------


def account_lock_settings(database_url: str, **overrides: Any) -> Settings:
    return make_settings(
        database_url,
        rate_limit_failed_logins_per_account="3/minute",
        trusted_proxies=PROXY,
        **overrides,
    )


async def fail_from_many_ips(http: httpx.AsyncClient, email: str, count: int) -> None:
    for number in range(count):
        response = await attempt(
            http, email, WRONG_PASSWORD, headers=forwarded(f"198.51.100.{number + 1}")
        )
        assert response.status_code == 401, response.text


async def test_failures_from_many_ips_lock_the_account_even_for_the_right_password(
    database_url: str,
) -> None:
    async with serving(account_lock_settings(database_url)) as http:
        user = await register(http)
        await fail_from_many_ips(http, user["email"], 3)

        refused = await attempt(http, user["email"], headers=forwarded("203.0.113.250"))

    assert_rate_limited(refused, limit=3, window_seconds=60)


async def test_successful_logins_do_not_count_toward_the_account_lock(database_url: str) -> None:
    async with serving(account_lock_settings(database_url)) as http:
        user = await register(http)
        statuses = [
            (await attempt(http, user["email"], headers=forwarded(f"198.51.100.{n}"))).status_code
            for n in range(5)
        ]

    assert statuses == [200] * 5


async def test_the_account_lock_concerns_only_that_account(database_url: str) -> None:
    async with serving(account_lock_settings(database_url)) as http:
        victim = await register(http)
        bystander = await register(http)
        await fail_from_many_ips(http, victim["email"], 3)

        other = await attempt(http, bystander["email"], headers=forwarded("198.51.100.1"))

    assert other.status_code == 200, other.text


async def test_a_password_reset_clears_the_account_lock(database_url: str, smtp: Smtp) -> None:
    sink, port = smtp
    settings = account_lock_settings(
        database_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_tls="none",
        public_url="http://testserver",
    )
    async with running(settings) as app, client_of(app) as http:
        user = await register(http)
        await fail_from_many_ips(http, user["email"], 3)
        locked = await attempt(http, user["email"], headers=forwarded("203.0.113.250"))
        assert locked.status_code == 429

        mail = await reset_mail(http, app, sink, user["email"])
        reset = await http.post(
            RESET_CONFIRM, json={"token": mail.token, "new_password": NEW_PASSWORD}
        )
        assert reset.status_code == 204, reset.text

        after = await attempt(http, user["email"], NEW_PASSWORD, headers=forwarded("203.0.113.7"))

    assert after.status_code == 200, after.text


async def test_the_account_lock_expires(database_url: str) -> None:
    settings = make_settings(
        database_url, rate_limit_failed_logins_per_account="2/2 seconds", trusted_proxies=PROXY
    )
    async with serving(settings) as http:
        user = await register(http)
        await fail_from_many_ips(http, user["email"], 2)
        locked = await attempt(http, user["email"], headers=forwarded("203.0.113.250"))
        assert_rate_limited(locked, limit=2, window_seconds=2)

        # Bounded poll: the window is 2 s (limits counts whole seconds); 6 s is ample.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 6
        polls = 0
        while True:
            # A new address each time, so the polling stays within the per-IP limits.
            polls += 1
            response = await attempt(http, user["email"], headers=forwarded(f"192.0.2.{polls}"))
            if response.status_code != 429 or loop.time() > deadline:
                break
            await asyncio.sleep(0.2)

    assert response.status_code == 200, response.text


async def test_graphql_login_shares_the_rest_login_limits(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_login_per_ip_email="2/minute")
    async with serving(settings) as http:
        user = await register(http)
        for _ in range(2):
            assert (await attempt(http, user["email"])).status_code == 200

        response = await http.post(
            "/graphql",
            json={
                "query": GRAPHQL_LOGIN,
                "variables": {"email": user["email"], "password": PASSWORD},
            },
        )

    body = response.json()
    assert body.get("data") is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 1 <= error["extensions"]["retryAfter"] <= 60


async def test_graphql_login_failures_count_toward_the_rest_account_lock(
    database_url: str,
) -> None:
    async with serving(account_lock_settings(database_url)) as http:
        user = await register(http)
        for number in range(3):
            response = await http.post(
                "/graphql",
                json={
                    "query": GRAPHQL_LOGIN,
                    "variables": {"email": user["email"], "password": WRONG_PASSWORD},
                },
                headers=forwarded(f"198.51.100.{number}"),
            )
            assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

        refused = await attempt(http, user["email"], headers=forwarded("203.0.113.250"))

    assert_rate_limited(refused, limit=3, window_seconds=60)
