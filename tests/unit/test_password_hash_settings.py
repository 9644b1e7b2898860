"""argon2id cost settings: OWASP's headline minimum by default, any configuration OWASP
lists as its equal accepted, anything weaker refused at start-up naming the setting."""

from __future__ import annotations

import pytest
from argon2 import extract_parameters

from accounts.security.passwords import HashParameters, PasswordHasher
from accounts.settings import Settings, SettingsError, load_settings

# OWASP Password Storage Cheat Sheet, Argon2id: (memory KiB, passes), one lane each.
OWASP_EQUALS = [(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5)]


@pytest.fixture(autouse=True)
def no_hash_settings_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: not the shell's variables (the bench passes these
    through) nor a .env file in the working directory."""
    for name in (
        "ACCOUNTS_PASSWORD_HASH_MEMORY_KIB",
        "ACCOUNTS_PASSWORD_HASH_TIME_COST",
        "ACCOUNTS_PASSWORD_HASH_PARALLELISM",
    ):
        monkeypatch.delenv(name, raising=False)


def settings_of(**overrides: object) -> Settings:
    return load_settings(_env_file=None, **overrides)


def test_the_default_is_owasps_headline_minimum() -> None:
    settings = settings_of()

    assert settings.password_hash_memory_kib == 19456
    assert settings.password_hash_time_cost == 2
    assert settings.password_hash_parallelism == 1


@pytest.mark.parametrize(("memory_kib", "time_cost"), OWASP_EQUALS)
def test_every_configuration_owasp_lists_as_equal_is_accepted(
    memory_kib: int, time_cost: int
) -> None:
    settings = settings_of(password_hash_memory_kib=memory_kib, password_hash_time_cost=time_cost)

    assert (settings.password_hash_memory_kib, settings.password_hash_time_cost) == (
        memory_kib,
        time_cost,
    )


@pytest.mark.parametrize(("memory_kib", "time_cost"), [row for row in OWASP_EQUALS if row[1] > 1])
def test_one_pass_fewer_than_owasp_asks_for_that_memory_is_refused(
    memory_kib: int, time_cost: int
) -> None:
    with pytest.raises(SettingsError, match=r"ACCOUNTS_PASSWORD_HASH_TIME_COST: .*at least"):
        settings_of(password_hash_memory_kib=memory_kib, password_hash_time_cost=time_cost - 1)


def test_memory_between_two_rows_needs_the_passes_of_the_row_below_it() -> None:
    # 15 MiB is less than 19 MiB: it needs the 12 MiB row's three passes.
    with pytest.raises(SettingsError, match="at least 3 with 15360 KiB"):
        settings_of(password_hash_memory_kib=15360, password_hash_time_cost=2)
    assert settings_of(password_hash_memory_kib=15360, password_hash_time_cost=3)


def test_less_memory_than_any_owasp_configuration_is_refused() -> None:
    with pytest.raises(SettingsError, match="ACCOUNTS_PASSWORD_HASH_MEMORY_KIB"):
        settings_of(password_hash_memory_kib=7167, password_hash_time_cost=20)


def test_environment_variables_choose_the_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCOUNTS_PASSWORD_HASH_MEMORY_KIB", "7168")
    monkeypatch.setenv("ACCOUNTS_PASSWORD_HASH_TIME_COST", "5")

    settings = settings_of()

    assert (settings.password_hash_memory_kib, settings.password_hash_time_cost) == (7168, 5)


async def test_hashes_carry_the_configured_cost_and_older_costs_still_verify() -> None:
    older = PasswordHasher(HashParameters(memory_kib=19456, time_cost=2), workers=1)
    low_memory = PasswordHasher(HashParameters(memory_kib=7168, time_cost=5), workers=1)
    try:
        stored = await older.hash("correct horse battery")
        rehashed = await low_memory.hash("correct horse battery")

        parameters = extract_parameters(rehashed)
        assert (parameters.memory_cost, parameters.time_cost) == (7168, 5)
        # A hash made before the cost changed still verifies, and is due for a rehash.
        assert await low_memory.verify(stored, "correct horse battery")
        assert low_memory.needs_rehash(stored)
        assert not low_memory.needs_rehash(rehashed)
    finally:
        older.close()
        low_memory.close()


def test_lowering_only_the_memory_says_which_passes_it_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCOUNTS_PASSWORD_HASH_MEMORY_KIB", "7168")

    with pytest.raises(SettingsError) as refused:
        settings_of()

    message = str(refused.value)
    assert "ACCOUNTS_PASSWORD_HASH_TIME_COST: " in message
    assert "at least 5 with 7168 KiB" in message
    assert "or raise ACCOUNTS_PASSWORD_HASH_MEMORY_KIB" in message
