"""Frame stacks reused, not unmapped: a cache in front of CPython's arena allocator.

On Python 3.11+ each greenlet maps a fresh 16 KiB frame stack and unmaps it when it
ends, and SQLAlchemy's asyncio layer runs every awaited session call in a new greenlet.
While an argon2 hash runs on the other core, each unmapping stalls the event loop
for about a millisecond on a small VM (a TLB shootdown): half the loop's time in a
login storm. The C extension ``accounts._arena_cache`` keeps up to 64 freed blocks of
up to 64 KiB for reuse (docs/performance.md, docs/decisions.md).

The extension is built when the package is installed, if a C compiler and Python's
headers are there; without it the service runs as before, only slower under login
load, and says so once at start.
"""

from __future__ import annotations

from typing import TypedDict

try:
    from accounts import _arena_cache
except ImportError:  # built optionally: no compiler or no headers at install time
    _arena_cache = None  # type: ignore[assignment]


class ArenaCacheStats(TypedDict):
    installed: bool
    held: int
    reused: int
    passed_through: int


def available() -> bool:
    """Whether the extension was built for this interpreter."""
    return _arena_cache is not None


def install() -> bool:
    """Put the cache in front of the arena allocator (once per process; idempotent).
    Returns whether it is in place."""
    if _arena_cache is None:
        return False
    _arena_cache.install()
    return True


def stats() -> ArenaCacheStats | None:
    """What the cache has done in this process, or None without the extension."""
    if _arena_cache is None:
        return None
    return ArenaCacheStats(**_arena_cache.stats())
