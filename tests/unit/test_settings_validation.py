"""Settings refused at start-up with a message naming them: values that parse but
cannot be what the operator meant (an empty issuer, a sender that is no address)."""

from __future__ import annotations

import os

import pytest

from accounts.settings import Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def no_settings_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: not the shell's ACCOUNTS_* variables."""
    for name in [key for key in os.environ if key.upper().startswith("ACCOUNTS_")]:
        monkeypatch.delenv(name)


def settings_of(**overrides: object) -> Settings:
    return load_settings(_env_file=None, **overrides)


# --- ACCOUNTS_HOST ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "0.0.0.0", "::", "::1", "localhost", "accounts.internal", "web-1"],  # noqa: S104
)
def test_an_ip_address_or_a_host_name_is_accepted_as_the_host(host: str) -> None:
    assert settings_of(host=host).host == host


@pytest.mark.parametrize(
    "host", ["", "  ", "not_a_host", "999.1.1.1", "1.2.3", "[::1]", "-web.example", "a b"]
)
def test_a_host_that_is_neither_an_address_nor_a_name_is_refused(host: str) -> None:
    with pytest.raises(SettingsError, match="ACCOUNTS_HOST: "):
        settings_of(host=host)
