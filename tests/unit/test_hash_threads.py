"""How many argon2id threads each worker process gets by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from accounts.bootstrap import build, hash_threads
from tests.conftest import make_settings


@pytest.mark.parametrize(
    ("workers", "cores", "threads"),
    [(1, 2, 2), (2, 2, 1), (4, 2, 1), (1, 8, 8), (3, 8, 2), (1, 1, 1)],
)
def test_the_cores_are_shared_among_the_worker_processes(
    workers: int, cores: int, threads: int
) -> None:
    assert hash_threads(workers, cores) == threads


def test_every_worker_gets_at_least_one_thread() -> None:
    assert hash_threads(64, 2) == 1


@pytest.mark.parametrize(("workers", "threads"), [(1, None), (2, None), (2, 3)])
async def test_the_container_sizes_its_hashing_pool_so(
    tmp_path: Path, workers: int, threads: int | None
) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'accounts.db'}",
        workers=workers,
        password_hash_workers=threads,
    )
    container = build(settings)
    try:
        pool = container.hasher._pool
        assert pool._max_workers == (threads or hash_threads(workers))
    finally:
        await container.database.dispose()
        container.hasher.close()
