"""Every ACCOUNTS_* name the project itself reads is known to the unknown-variable
warning, so that adding one to a script without telling the warning fails here."""

from __future__ import annotations

import re
from pathlib import Path

from accounts.unknown_settings import is_known

ROOT = Path(__file__).resolve().parents[2]
# Where the project reads environment variables: the service, its scripts, the
# bench, the test set-up, the Makefile and CI. (Not the tests themselves: some spell
# names wrong on purpose.)
SOURCES = ["src", "scripts", "bench", "tests/conftest.py", "tests/servers.py", "Makefile", ".ci"]
SUFFIXES = {".py", ".sh", ".toml", ""}
# The warning's own module, whose examples are misspelt names.
SKIPPED = {ROOT / "src" / "accounts" / "unknown_settings.py"}
NAME = re.compile(r"\bACCOUNTS_[A-Z0-9_]+")


def names_in_the_project() -> set[str]:
    names: set[str] = set()
    for source in SOURCES:
        path = ROOT / source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            if (
                file.suffix not in SUFFIXES
                or "results" in file.parts
                or file in SKIPPED
                # Installation's output: PKG-INFO carries the README, whose examples
                # include a misspelt name.
                or any(part.endswith(".egg-info") for part in file.parts)
            ):
                continue
            try:
                text = file.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            # A name ending in "_" is a family (ACCOUNTS_PASSWORD_HASH_*), not a variable.
            names.update(name for name in NAME.findall(text) if not name.endswith("_"))
    return names


def test_every_accounts_variable_the_project_reads_is_known() -> None:
    names = names_in_the_project()

    assert {"ACCOUNTS_ADMIN_PASSWORD", "ACCOUNTS_PG_PORT", "ACCOUNTS_TEST_POSTGRES_URL"} <= names
    assert sorted(name for name in names if not is_known(name)) == []
