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


# --- values that parse but mean nothing -----------------------------------------------


@pytest.mark.parametrize("setting", ["jwt_issuer", "jwt_audience"])
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_token_issuer_or_audience_is_refused(setting: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"ACCOUNTS_{setting.upper()}: .*must not be empty"):
        settings_of(**{setting: value})


@pytest.mark.parametrize(
    "sender",
    [
        "no-reply@example.com",
        "Example <no-reply@example.com>",
        '"Example, Inc." <no-reply@example.com>',
        "Accounts <no-reply@localhost>",
    ],
)
def test_one_email_address_with_or_without_a_name_is_accepted_as_the_sender(
    sender: str,
) -> None:
    assert settings_of(email_from=sender).email_from == sender


@pytest.mark.parametrize(
    "sender",
    [
        "notanemail",
        "",
        "no-reply@",
        "@example.com",
        "no reply@example.com",
        "a@example.com, b@example.com",
        "a@example.com,",
        "Example <no-reply@example.com> trailing",
        "no-reply@example.com\r\nBcc: victim@example.com",
        "a@[",  # the header parser raised AttributeError: a traceback, not this message
        "a@[1.2.3",
    ],
)
def test_a_sender_that_is_not_one_email_address_is_refused(sender: str) -> None:
    with pytest.raises(SettingsError, match="ACCOUNTS_EMAIL_FROM: "):
        settings_of(email_from=sender)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://", "must name a host"),
        ("https://accounts.example.com/?next=1", "query"),
        ("https://accounts.example.com/#top", "fragment"),
        ("https://accounts.example.com:99999", "port"),
    ],
)
def test_a_public_url_that_cannot_start_a_link_is_refused(url: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=f"ACCOUNTS_PUBLIC_URL: .*{problem}"):
        settings_of(public_url=url)


def test_an_empty_public_url_means_unset() -> None:
    settings = settings_of(public_url="", host="127.0.0.1", port=8000)

    assert settings.effective_public_url == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("smtp", "named"),
    [
        ({"smtp_username": "mailer", "smtp_password": "secret"}, "ACCOUNTS_SMTP_HOST"),
        ({"smtp_host": " ", "smtp_password": "secret"}, "ACCOUNTS_SMTP_HOST"),
        ({"smtp_host": "smtp.example.com", "smtp_username": "mailer"}, "ACCOUNTS_SMTP_PASSWORD"),
        (
            {"smtp_host": "smtp.example.com", "smtp_username": "mailer", "smtp_password": ""},
            "ACCOUNTS_SMTP_PASSWORD",
        ),
        ({"smtp_host": "smtp.example.com", "smtp_password": "secret"}, "ACCOUNTS_SMTP_USERNAME"),
    ],
)
def test_smtp_credentials_without_a_host_or_without_each_other_are_refused(
    smtp: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=f"{named}: must be set"):
        settings_of(**smtp)


def test_a_bad_smtp_setting_never_shows_the_password() -> None:
    with pytest.raises(SettingsError) as refused:
        settings_of(smtp_username="mailer", smtp_password="hunter2-secret")

    assert "hunter2-secret" not in str(refused.value)


@pytest.mark.parametrize(
    "smtp",
    [
        {},
        {"smtp_host": ""},
        {"smtp_host": "smtp.example.com"},
        {"smtp_host": "smtp.example.com", "smtp_username": "mailer", "smtp_password": "secret"},
    ],
)
def test_smtp_off_on_without_login_and_on_with_login_are_accepted(smtp: dict[str, str]) -> None:
    settings_of(**smtp)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://app:ab/cd@db.internal/accounts",
        "postgresql+asyncpg://app:ab#cd@db.internal:5432/accounts",
        "postgresql+asyncpg://app:12/34@db.internal/accounts",
    ],
    ids=["slash", "hash-with-port", "digits-and-slash"],
)
def test_a_password_with_an_unencoded_slash_or_hash_is_read_as_sqlalchemy_reads_it(
    url: str,
) -> None:
    # Such URLs connect (SQLAlchemy's parser takes the password up to the last "@"),
    # so they must not be refused as a bad port.
    assert settings_of(database_url=url).database_url == url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://app@db.internal:notaport/accounts",
        "postgresql+asyncpg://app@db.internal:0/accounts",
        "postgresql+asyncpg://app@db.internal:65536/accounts",
    ],
    ids=["not-a-number", "zero", "too-large"],
)
def test_a_database_port_that_is_no_port_is_refused(url: str) -> None:
    with pytest.raises(SettingsError, match=r"ACCOUNTS_DATABASE_URL: .*port"):
        settings_of(database_url=url)
