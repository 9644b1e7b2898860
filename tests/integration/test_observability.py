"""Observability: one JSON log line per request (never a secret), Prometheus /metrics,
/healthz and /readyz.

Logs are read the way an operator's collector reads them: the process's stderr
(captured with ``capfd``), one JSON object per line. Metrics are parsed with
prometheus_client's own text parser, and values are asserted, not substrings.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import structlog
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from accounts.http.app import create_app
from accounts.settings import Settings
from tests.conftest import make_settings
from tests.factories import PASSWORD, account, bearer, unique_email

ME = "/api/v1/users/me"
LOGIN = "/api/v1/auth/login"
USER_ROUTE = "/api/v1/users/{user_id}"
NEW_PASSWORD = "a brand new passphrase"
WRONG_PASSWORD = "not my passphrase at all"
# Below the SQLite cap (accounts.db.engine.SQLITE_POOL_LIMIT), so both backends use it as is.
POOL_SIZE = 3


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """These tests configure logging to a captured stderr; put the defaults back after."""
    yield
    structlog.reset_defaults()


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield application, http


def info_settings(database_url: str, **overrides: Any) -> Settings:
    return make_settings(database_url, log_level="info", database_pool_size=POOL_SIZE, **overrides)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` that is a JSON object (other output is ignored)."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            parsed = json.loads(line)
            if isinstance(parsed, dict):
                found.append(parsed)
    return found


def request_lines(lines: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    return [
        line
        for line in lines
        if line.get("event") == "request" and line.get("request_id") == request_id
    ]


# --- request log lines -------------------------------------------------------------------------


async def test_each_request_logs_one_json_line_with_its_request_id(
    database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    async with serving(info_settings(database_url)) as (_, http):
        response = await http.get("/healthz", headers={"X-Request-ID": "probe-0001"})

    lines = request_lines(json_lines(capfd.readouterr().err), "probe-0001")
    assert response.headers["x-request-id"] == "probe-0001"
    assert len(lines) == 1
    (line,) = lines
    assert line["method"] == "GET"
    assert line["route"] == "/healthz"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], int | float)
    assert line["duration_ms"] >= 0
    assert line["level"] == "info"
    assert "timestamp" in line


async def test_a_generated_request_id_is_the_one_logged(
    database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    async with serving(info_settings(database_url)) as (_, http):
        response = await http.get("/healthz")

    request_id = response.headers["x-request-id"]
    assert request_id
    assert len(request_lines(json_lines(capfd.readouterr().err), request_id)) == 1


async def test_an_authenticated_request_logs_the_route_template_and_the_user_id(
    database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    async with serving(info_settings(database_url)) as (_, http):
        user = await account(http)
        response = await http.get(
            f"/api/v1/users/{user.id}", headers={**user.headers, "X-Request-ID": "get-user-1"}
        )

    assert response.status_code == 200
    (line,) = request_lines(json_lines(capfd.readouterr().err), "get-user-1")
    assert line["route"] == USER_ROUTE
    assert user.id not in line["route"]
    assert line["user_id"] == user.id
    assert line["status"] == 200
    assert line["method"] == "GET"


async def test_an_anonymous_request_logs_no_user_id(
    database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    async with serving(info_settings(database_url)) as (_, http):
        await http.post(
            LOGIN,
            json={"email": unique_email(), "password": WRONG_PASSWORD},
            headers={"X-Request-ID": "anon-1"},
        )

    (line,) = request_lines(json_lines(capfd.readouterr().err), "anon-1")
    assert line["status"] == 401
    assert line["route"] == LOGIN
    assert line.get("user_id") is None


async def test_an_unmatched_path_is_logged_without_the_raw_path(
    database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    secret_looking = f"/no/such/{uuid.uuid4()}"
    async with serving(info_settings(database_url)) as (_, http):
        response = await http.get(secret_looking, headers={"X-Request-ID": "missing-1"})

    (line,) = request_lines(json_lines(capfd.readouterr().err), "missing-1")
    assert response.status_code == 404
    assert line["status"] == 404
    assert line["route"] != secret_looking
    assert secret_looking not in json.dumps(line)


async def test_no_password_or_token_is_ever_logged(
    database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    secrets: list[str] = [PASSWORD, NEW_PASSWORD, WRONG_PASSWORD]
    async with serving(info_settings(database_url)) as (_, http):
        user = await account(http)
        secrets += [user.access_token, user.refresh_token]
        refreshed = await http.post(
            "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
        )
        assert refreshed.status_code == 200
        pair = refreshed.json()
        secrets += [pair["access_token"], pair["refresh_token"]]
        wrong = await http.post(LOGIN, json={"email": user.email, "password": WRONG_PASSWORD})
        assert wrong.status_code == 401
        changed = await http.post(
            "/api/v1/users/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(pair["access_token"]),
        )
        assert changed.status_code == 204, changed.text
        # A refused request carrying a password (too short to be valid) and a bad token.
        short = await http.post(
            "/api/v1/users", json={"email": unique_email(), "password": "short1", "name": "S"}
        )
        assert short.status_code == 422
        secrets.append("short1")
        logged_out = await http.post(
            "/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}
        )
        assert logged_out.status_code == 204
        reused = await http.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
        assert reused.status_code == 401

    captured = capfd.readouterr()
    output = captured.out + captured.err
    assert json_lines(captured.err), "expected the request log lines on stderr"
    leaked = [secret for secret in secrets if secret in output]
    assert leaked == []
    # The tokens' parts are not logged piecemeal either (a JWT's signature, say).
    for token in (user.access_token, pair["access_token"]):
        assert token.split(".")[2] not in output


# --- /metrics ---------------------------------------------------------------------------------


async def scrape(http: httpx.AsyncClient) -> list[Sample]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return [
        sample
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The value of the one sample named ``name`` whose labels include ``labels``."""
    matching = [
        sample
        for sample in samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matching) <= 1, matching
    return matching[0].value if matching else None


async def test_metrics_count_requests_by_route_template_and_status(database_url: str) -> None:
    async with serving(make_settings(database_url)) as (_, http):
        user = await account(http)
        for _ in range(3):
            assert (
                await http.get(f"/api/v1/users/{user.id}", headers=user.headers)
            ).status_code == 200
        assert (
            await http.get(f"/api/v1/users/{uuid.uuid4()}", headers=user.headers)
        ).status_code == 404
        samples = await scrape(http)

    total = "accounts_http_requests_total"
    assert value(samples, total, method="GET", route=USER_ROUTE, status="200") == 3
    assert value(samples, total, method="GET", route=USER_ROUTE, status="404") == 1
    assert value(samples, total, method="POST", route="/api/v1/users", status="201") == 1
    assert value(samples, total, method="POST", route=LOGIN, status="200") == 1
    routes = {sample.labels.get("route") for sample in samples if sample.name == total}
    assert not any(user.id in str(route) for route in routes)


async def test_metrics_label_unmatched_paths_without_the_raw_path(database_url: str) -> None:
    missing = f"/nothing/here/{uuid.uuid4()}"
    async with serving(make_settings(database_url)) as (_, http):
        assert (await http.get(missing)).status_code == 404
        response = await http.get("/metrics")

    assert missing not in response.text
    samples = [
        sample
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]
    unmatched = [
        sample
        for sample in samples
        if sample.name == "accounts_http_requests_total" and sample.labels["status"] == "404"
    ]
    assert [sample.value for sample in unmatched] == [1]


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/docs/oauth2-redirect"])
async def test_metrics_count_the_docs_and_the_openapi_document_under_their_routes(
    database_url: str, path: str
) -> None:
    async with serving(make_settings(database_url)) as (_, http):
        assert (await http.get(path)).status_code == 200
        samples = await scrape(http)

    total = "accounts_http_requests_total"
    assert value(samples, total, method="GET", route=path, status="200") == 1
    assert value(samples, total, method="GET", route="<unmatched>") is None


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/graphql", "application/json"), (LOGIN, "application/x-www-form-urlencoded")],
)
async def test_metrics_count_a_body_refused_before_routing_under_its_route(
    database_url: str, path: str, content_type: str
) -> None:
    settings = make_settings(database_url)
    too_large = b"x" * (settings.max_request_body_bytes + 1)
    async with serving(settings) as (_, http):
        refused = await http.post(path, content=too_large, headers={"content-type": content_type})
        samples = await scrape(http)

    assert refused.status_code == 413
    total = "accounts_http_requests_total"
    assert value(samples, total, method="POST", route=path, status="413") == 1
    assert value(samples, total, route="<unmatched>") is None


async def test_metrics_fold_invented_methods_into_one_label(database_url: str) -> None:
    async with serving(make_settings(database_url)) as (_, http):
        assert (await http.get("/healthz")).status_code == 200
        for method in ("BREW", "PROPFIND", "X-" + uuid.uuid4().hex[:8]):
            assert (await http.request(method, "/healthz")).status_code == 405
        samples = await scrape(http)

    methods = {
        sample.labels["method"]
        for sample in samples
        if sample.name == "accounts_http_requests_total" and sample.labels["route"] == "/healthz"
    }
    assert methods == {"OTHER", "GET"}
    assert (
        value(
            samples, "accounts_http_requests_total", method="OTHER", route="/healthz", status="405"
        )
        == 3
    )


async def test_metrics_have_a_latency_histogram_per_route(database_url: str) -> None:
    async with serving(make_settings(database_url)) as (_, http):
        for _ in range(2):
            assert (await http.get("/healthz")).status_code == 200
        response = await http.get("/metrics")

    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    histogram = families["accounts_http_request_duration_seconds"]
    assert histogram.type == "histogram"
    samples = [sample for sample in histogram.samples if sample.labels.get("route") == "/healthz"]
    buckets = {
        sample.labels["le"]: sample.value for sample in samples if sample.name.endswith("_bucket")
    }
    count = [sample.value for sample in samples if sample.name.endswith("_count")]
    total = [sample.value for sample in samples if sample.name.endswith("_sum")]
    assert len(buckets) >= 5
    assert buckets["+Inf"] == 2
    bounds = sorted(buckets, key=float)
    assert [buckets[bound] for bound in bounds] == sorted(buckets.values())
    assert count == [2]
    assert total[0] > 0


async def test_metrics_count_login_outcomes(database_url: str) -> None:
    async with serving(make_settings(database_url)) as (_, http):
        user = await account(http)
        for _ in range(2):
            failed = await http.post(LOGIN, json={"email": user.email, "password": WRONG_PASSWORD})
            assert failed.status_code == 401
        unknown = await http.post(LOGIN, json={"email": unique_email(), "password": PASSWORD})
        assert unknown.status_code == 401
        samples = await scrape(http)

    assert value(samples, "accounts_logins_total", outcome="success") == 1
    assert value(samples, "accounts_logins_total", outcome="failure") == 3


async def test_metrics_count_rate_limit_rejections(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_login_per_ip_email="2/minute")
    async with serving(settings) as (_, http):
        user = await account(http)
        assert (
            await http.post(LOGIN, json={"email": user.email, "password": PASSWORD})
        ).status_code == 200
        for _ in range(2):
            refused = await http.post(LOGIN, json={"email": user.email, "password": PASSWORD})
            assert refused.status_code == 429
        samples = await scrape(http)

    rejections = [
        sample for sample in samples if sample.name == "accounts_rate_limit_rejections_total"
    ]
    assert sum(sample.value for sample in rejections) == 2
    assert value(samples, "accounts_rate_limit_rejections_total", limit="login_ip_email") == 2
    assert (
        value(samples, "accounts_http_requests_total", method="POST", route=LOGIN, status="429")
        == 2
    )


async def test_metrics_report_the_database_pool(database_url: str) -> None:
    async with serving(make_settings(database_url, database_pool_size=POOL_SIZE)) as (_, http):
        await account(http)
        samples = await scrape(http)

    pool = {
        sample.labels["state"]: sample.value
        for sample in samples
        if sample.name == "accounts_db_pool_connections"
    }
    assert pool["size"] == POOL_SIZE
    assert pool["checked_out"] >= 0
    assert pool["idle"] >= 1
    assert pool["kept"] >= 0
    assert pool["checked_out"] + pool["idle"] + pool["kept"] <= POOL_SIZE + pool["overflow"]


async def test_two_apps_in_one_process_keep_separate_metrics(database_url: str) -> None:
    async with (
        serving(make_settings(database_url)) as (_, first),
        serving(make_settings(database_url)) as (_, second),
    ):
        for _ in range(3):
            await first.get("/healthz")
        samples = await scrape(second)

    assert value(samples, "accounts_http_requests_total", route="/healthz", status="200") is None


# --- /healthz and /readyz -------------------------------------------------------------------------


async def test_healthz_is_200_ok(database_url: str) -> None:
    async with serving(make_settings(database_url)) as (_, http):
        response = await http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_the_database_answers(database_url: str) -> None:
    async with serving(make_settings(database_url)) as (_, http):
        response = await http.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_readyz_is_200_with_redis_when_both_answer(database_url: str, redis_url: str) -> None:
    async with serving(make_settings(database_url, redis_url=redis_url)) as (_, http):
        response = await http.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}
