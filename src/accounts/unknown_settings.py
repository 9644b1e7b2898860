"""Warnings for ``ACCOUNTS_*`` variables that no setting reads.

pydantic-settings ignores them (``extra="ignore"``), so a misspelt setting
(``ACCOUNTS_RATE_LIMIT=off`` for ``ACCOUNTS_RATE_LIMITS``) used to change nothing,
silently. They are warned about, not refused: an environment may be shared with other
tools that have ``ACCOUNTS_`` variables of their own.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path

from dotenv import dotenv_values

from accounts.settings import Settings

PREFIX = "ACCOUNTS_"
# Read by the project outside Settings: not settings, but not typos either.
OTHER_VARIABLES = frozenset(
    {
        "ACCOUNTS_ADMIN_PASSWORD",  # accounts create-admin
        "ACCOUNTS_PG_PORT",  # scripts/postgres.sh
        "ACCOUNTS_REDIS_PORT",  # scripts/redis.sh
    }
)
OTHER_PREFIXES = ("ACCOUNTS_TEST_",)  # the test suite's own (tests/conftest.py, scripts)
# How alike a name must be to a setting's (difflib's ratio, prefix left out) to be
# suggested: ACCOUNTS_RATE_LIMIT for ACCOUNTS_RATE_LIMITS, not every other name.
SUGGESTION_CUTOFF = 0.75


def setting_variables() -> list[str]:
    return sorted(f"{PREFIX}{name.upper()}" for name in Settings.model_fields)


def is_known(name: str) -> bool:
    upper = name.upper()  # pydantic-settings matches names case-insensitively
    return (
        upper in setting_variables() or upper in OTHER_VARIABLES or upper.startswith(OTHER_PREFIXES)
    )


def unknown_variable_warnings(
    environ: Mapping[str, str], env_file: Path | None = Path(".env")
) -> list[str]:
    """One line per ``ACCOUNTS_*`` name, in ``environ`` or in ``env_file``, that is
    neither a setting nor a variable the project reads elsewhere."""
    warnings = [_warning(name, "environment variable") for name in _unknown(environ)]
    if env_file is not None and env_file.is_file():
        keys = dotenv_values(env_file).keys()
        warnings += [_warning(name, f"key in {env_file}") for name in _unknown(keys)]
    return warnings


def _unknown(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if n.upper().startswith(PREFIX) and not is_known(n))


def _warning(name: str, where: str) -> str:
    line = f"{name} ({where}) is not a setting and is ignored"
    suggestion = closest_setting(name)
    return f"{line}: did you mean {suggestion}?" if suggestion else line


def closest_setting(name: str) -> str | None:
    suffixes = {variable.removeprefix(PREFIX): variable for variable in setting_variables()}
    close = difflib.get_close_matches(
        name.upper().removeprefix(PREFIX), suffixes, n=1, cutoff=SUGGESTION_CUTOFF
    )
    return suffixes[close[0]] if close else None
