"""Helpers for tests that run the real server or its command line as a process."""

from __future__ import annotations

import os
import socket


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrubbed_env(**settings: str) -> dict[str, str]:
    """The inherited environment minus every ACCOUNTS_* variable, plus ``settings``
    (``database_url="…"`` becomes ``ACCOUNTS_DATABASE_URL``), so that a developer's
    environment cannot change what a test sees."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ACCOUNTS_")}
    env.update({f"ACCOUNTS_{name.upper()}": value for name, value in settings.items()})
    return env
