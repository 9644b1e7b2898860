"""Loggers are cached in a serving process only: tests reconfigure logging per app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from accounts.http.app import create_app
from accounts.logging import configure_logging
from accounts.settings import Settings


@pytest.fixture(autouse=True)
def uncached_afterwards() -> Iterator[None]:
    yield
    configure_logging()


def test_a_serving_process_caches_its_loggers(settings: Settings) -> None:
    create_app(settings, cache_loggers=True)

    assert structlog.get_config()["cache_logger_on_first_use"] is True


def test_an_app_built_for_tests_does_not(settings: Settings) -> None:
    configure_logging(cache_loggers=True)

    create_app(settings)

    assert structlog.get_config()["cache_logger_on_first_use"] is False
