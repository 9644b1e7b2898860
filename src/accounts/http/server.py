"""The serving process: uvicorn running the app, and nothing else.

``accounts serve`` checks and prepares the database (migrations, the first signing
key), then replaces itself with ``python -P -m accounts.http.server`` (the same pid,
so signals reach it as before). The process that serves therefore
carries only what serving needs: not the command line (Typer, Rich, Pygments), not
the migration tooling (Alembic, Mako), and not the heap the preparation left behind,
a few MiB (docs/performance.md). Settings come from the environment, as every
worker reads them.

The exec is also the one chance to tune glibc's allocator, which reads
``GLIBC_TUNABLES`` only at start: see ``serving_environment``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import uvicorn

if TYPE_CHECKING:
    from accounts.settings import Settings

# glibc >= 2.35: malloc advises transparent huge pages for the memory it maps. Each
# argon2id hash maps its 19 MiB (or more) afresh and unmaps it when done (see
# security/passwords.py); in 4 KiB pages that is ~4,900 page faults, ~11 ms of kernel
# time on top of ~21 ms of hashing. In 2 MiB pages it is a few hundred: a login costs
# ~25% less CPU and peak memory is unchanged (docs/performance.md). Other libcs and
# older glibcs ignore it.
HUGE_PAGE_TUNABLE = "glibc.malloc.hugetlb"
TUNABLES = "GLIBC_TUNABLES"


def serving_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` as the serving process should start with it: huge pages for
    malloc's mappings, unless the operator set that tunable themselves."""
    env = dict(environ)
    tunables = [t for t in env.get(TUNABLES, "").split(":") if t]
    if not any(t.split("=", 1)[0] == HUGE_PAGE_TUNABLE for t in tunables):
        env[TUNABLES] = ":".join([*tunables, f"{HUGE_PAGE_TUNABLE}=1"])
    return env


# How uvicorn serves the app, beside host, port and workers. The bench's floor app is
# served with these too, so that the two differ only in what the app does.
UVICORN_OPTIONS: dict[str, Any] = {
    "factory": True,
    # Our own middleware logs each request once, as JSON.
    "log_level": "warning",
    "access_log": False,
    "proxy_headers": False,
    "timeout_graceful_shutdown": 30,
}


def run(settings: Settings | None = None) -> None:
    """Serve until stopped: ``settings.workers`` processes on ``host:port``."""
    # Imported here, not above: the bench's floor app imports this module for
    # UVICORN_OPTIONS, and pydantic-settings would add ~12 MiB to the floor's memory.
    from accounts.settings import load_settings

    settings = settings or load_settings()
    uvicorn.run(
        "accounts.http.app:serve_app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        **UVICORN_OPTIONS,
    )


if __name__ == "__main__":
    run()
