"""The list of common passwords new passwords are screened against (see data/README.md)."""

from __future__ import annotations

import gzip
from importlib import resources


def load_common_passwords() -> frozenset[str]:
    """Read the shipped list: about 20,000 lower-cased passwords (~1.5 MB in memory)."""
    raw = resources.files("accounts.security").joinpath("data/common-passwords.txt.gz")
    with raw.open("rb") as compressed:
        text = gzip.decompress(compressed.read()).decode("utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())
