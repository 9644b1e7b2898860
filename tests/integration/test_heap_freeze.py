"""`accounts serve` freezes the heap once started; apps built in tests do not."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from asgi_lifespan import LifespanManager

from accounts.http.app import create_app
from accounts.settings import Settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    # Frozen objects are never freed: give this test process its heap back.
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
async def test_a_serving_app_freezes_what_start_up_built(settings: Settings) -> None:
    app = create_app(settings, freeze_heap=True)
    assert gc.get_freeze_count() == 0
    gc.collect()
    before_start_up = len(gc.get_objects())
    async with LifespanManager(app):
        # Everything alive before start-up, and what start-up built (the container,
        # engines, key ring) on top: the freeze came after start-up, not before.
        assert gc.get_freeze_count() > before_start_up


@pytest.mark.usefixtures("unfrozen")
async def test_an_app_built_for_tests_freezes_nothing(settings: Settings) -> None:
    async with LifespanManager(create_app(settings)):
        assert gc.get_freeze_count() == 0
