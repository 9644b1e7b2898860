"""Settings, read from ``ACCOUNTS_*`` environment variables (or ``.env``) and validated
once at start-up, so a bad value stops the process with a message naming the setting.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from email.headerregistry import Address, HeaderRegistry
from typing import Literal
from urllib.parse import urlsplit

from limits import parse as parse_limit
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./accounts.db"


# OWASP's Password Storage Cheat Sheet lists these argon2id configurations (memory in
# KiB, passes; one lane) as equally strong: less memory is paid for with more passes.
# A memory cost is accepted with at least the passes its row asks; below the last
# row's memory nothing is. The default is the second row, OWASP's headline minimum.
OWASP_ARGON2ID_MINIMUMS = (
    (46 * 1024, 1),
    (19 * 1024, 2),
    (12 * 1024, 3),
    (9 * 1024, 4),
    (7 * 1024, 5),
)
OWASP_LEAST_MEMORY_KIB = OWASP_ARGON2ID_MINIMUMS[-1][0]


def least_time_cost(memory_kib: int) -> int:
    """The fewest argon2id passes OWASP's table allows with ``memory_kib`` of memory."""
    for row_memory, passes in OWASP_ARGON2ID_MINIMUMS:
        if memory_kib >= row_memory:
            return passes
    raise ValueError(f"below OWASP's least memory cost, {OWASP_LEAST_MEMORY_KIB} KiB")


# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
_HOST_NAME = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


_HEADERS = HeaderRegistry()


class SettingsError(Exception):
    """A setting is missing or invalid; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ACCOUNTS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # Where data lives.
    database_url: str = DEFAULT_DATABASE_URL
    # Large enough for a busy worker: overflow connections are closed on return, so a
    # pool that is too small churns connections under load.
    database_pool_size: int = Field(default=20, ge=1, le=200)
    database_max_overflow: int = Field(default=10, ge=0, le=200)
    database_pool_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    redis_url: str | None = None

    # How it is served.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    public_url: str | None = None
    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"

    # Policy.
    registration_open: bool = True
    # Client IPs come from the socket peer; X-Forwarded-For is believed only when the
    # peer is one of these (comma-separated addresses or CIDR networks).
    trusted_proxies: str = ""

    # Rate limits ("N/second|minute|hour|day", moving window). "off" disables all.
    rate_limits: Literal["on", "off"] = "on"
    rate_limit_login_per_ip_email: str = "10/minute"
    rate_limit_login_per_ip: str = "60/minute"
    rate_limit_failed_logins_per_account: str = "20/15 minutes"
    rate_limit_register_per_ip: str = "20/hour"
    rate_limit_refresh_per_ip: str = "60/minute"
    rate_limit_email_requests_per_ip: str = "20/hour"
    rate_limit_email_requests_per_account: str = "5/hour"

    # Tokens.
    jwt_issuer: str = "accounts"
    jwt_audience: str = "accounts"
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=30, le=24 * 3600)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60, le=365 * 24 * 3600)

    # Email: SMTP when a host is set; otherwise each message is written to the log.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["none", "starttls", "ssl"] = "starttls"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    email_from: str = "Accounts <no-reply@localhost>"
    email_verification_ttl_seconds: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)
    password_reset_ttl_seconds: int = Field(default=3600, ge=60, le=24 * 3600)
    mail_max_attempts: int = Field(default=8, ge=1, le=50)

    # Password hashing: argon2id, by default OWASP's recommended minimum (m=19 MiB, t=2,
    # p=1); any of the configurations OWASP lists as its equals is accepted, nothing
    # below them (OWASP_ARGON2ID_MINIMUMS).
    password_hash_memory_kib: int = Field(
        default=19 * 1024, ge=OWASP_LEAST_MEMORY_KIB, le=1024 * 1024
    )
    password_hash_time_cost: int = Field(default=2, ge=1, le=20)
    password_hash_parallelism: int = Field(default=1, ge=1, le=16)
    # Hashing runs in a bounded thread pool off the event loop; by default the cores
    # shared among the worker processes (bootstrap.hash_threads).
    password_hash_workers: int | None = Field(default=None, ge=1, le=64)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        try:
            # SQLAlchemy's own parser, the one that will connect: it reads a password
            # with an unencoded "/" or "#" in it as the password.
            port = make_url(value).port
        except (ArgumentError, ValueError):
            port = 0
        if port is not None and not 1 <= port <= 65535:
            # Never echo the value: it holds the password.
            raise ValueError(
                "the port is not a number from 1 to 65535 (in a password, percent-encode"
                " any of : / @ ? #)"
            )
        return value

    @field_validator("host")
    @classmethod
    def _bindable_host(cls, value: str) -> str:
        if not value.strip():
            # Refused, not read as "unset": to uvicorn an empty host means every
            # interface, so the operator may have meant that, or a template may have
            # left it blank. Either guess could listen somewhere other than intended.
            raise ValueError(
                "must not be empty: 127.0.0.1 for this machine only, 0.0.0.0 or :: for"
                " every interface"
            )
        try:
            ipaddress.ip_address(value)
        except ValueError:
            pass
        else:
            return value
        labels = value.rstrip(".").split(".")
        if all(label.isdigit() for label in labels):  # meant as an IPv4 address
            raise ValueError(f"{value!r} is not a valid IP address")
        if not _HOST_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is neither an IP address nor a host name")
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("public_url")
    @classmethod
    def _absolute_public_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http:// or https:// URL")
        # Links in emails are this plus a path: it needs a host, and a query or
        # fragment would end up in the middle of every link.
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - parsing it is the check
        except ValueError:
            raise ValueError("the port is not a number from 1 to 65535") from None
        if not parts.hostname:
            raise ValueError("must name a host, e.g. https://accounts.example.com")
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ValueError("must not have a query or a fragment")
        return value.rstrip("/")

    @field_validator("smtp_host", "smtp_username")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("smtp_password")
    @classmethod
    def _empty_password_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @field_validator("jwt_issuer", "jwt_audience")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # An empty iss/aud would be signed into every token, and any token with an
        # empty one would verify: a value that looks set and identifies nothing.
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("email_from")
    @classmethod
    def _one_mailbox(cls, value: str) -> str:
        # Parsed as the From header of every message will be (the email package's
        # default policy), so what passes here is what recipients see.
        try:
            header = _HEADERS("From", value)
        # A few malformed inputs raise instead ("a@[" an AttributeError): whatever the
        # parser raises, the value is no mailbox.
        except Exception:
            header = None
        addresses: tuple[Address, ...] = getattr(header, "addresses", ())
        if (
            header is None
            or header.defects
            or len(addresses) != 1
            or not (addresses[0].username and addresses[0].domain)
            or value.rstrip().endswith(",")
        ):
            raise ValueError(
                "must be one email address, optionally with a name:"
                " no-reply@example.com or Example <no-reply@example.com>"
            )
        return value

    @model_validator(mode="after")
    def _smtp_complete(self) -> Settings:
        # Credentials without a host would be ignored, and mail written to the log
        # instead of sent: the operator clearly meant SMTP.
        credentials = self.smtp_username is not None or self.smtp_password is not None
        if credentials and self.smtp_host is None:
            raise ValueError(
                "ACCOUNTS_SMTP_HOST: must be set when ACCOUNTS_SMTP_USERNAME or"
                " ACCOUNTS_SMTP_PASSWORD is"
            )
        if self.smtp_username is not None and self.smtp_password is None:
            raise ValueError("ACCOUNTS_SMTP_PASSWORD: must be set with ACCOUNTS_SMTP_USERNAME")
        if self.smtp_password is not None and self.smtp_username is None:
            raise ValueError("ACCOUNTS_SMTP_USERNAME: must be set with ACCOUNTS_SMTP_PASSWORD")
        return self

    @field_validator(
        "rate_limit_login_per_ip_email",
        "rate_limit_login_per_ip",
        "rate_limit_failed_logins_per_account",
        "rate_limit_register_per_ip",
        "rate_limit_refresh_per_ip",
        "rate_limit_email_requests_per_ip",
        "rate_limit_email_requests_per_account",
    )
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        try:
            parse_limit(value)
        except ValueError:
            raise ValueError("must look like 10/minute or 20/15 minutes") from None
        return value

    @field_validator("password_hash_time_cost")
    @classmethod
    def _owasp_time_cost(cls, value: int, info: ValidationInfo) -> int:
        memory = info.data.get("password_hash_memory_kib")
        if memory is None:  # itself invalid, and reported as such
            return value
        least = least_time_cost(memory)
        if value < least:
            rows = ", ".join(f"{kib} KiB t={passes}" for kib, passes in OWASP_ARGON2ID_MINIMUMS)
            raise ValueError(
                f"must be at least {least} with {memory} KiB of memory, or raise "
                f"ACCOUNTS_PASSWORD_HASH_MEMORY_KIB (OWASP's argon2id minimums: {rows})"
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @property
    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        parts = (part.strip() for part in self.trusted_proxies.split(","))
        return [ipaddress.ip_network(part, strict=False) for part in parts if part]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings, raising ``SettingsError`` that names each bad one."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if not error["loc"]:  # a check across settings: its message names them
                problems.append(error["msg"].removeprefix("Value error, "))
                continue
            field = str(error["loc"][0])
            problems.append(f"ACCOUNTS_{field.upper()}: {error['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None


def check_host_resolves(settings: Settings) -> None:
    """Raise ``SettingsError`` naming ACCOUNTS_HOST when it is a name that does not
    resolve. Only ``accounts serve`` binds, so only it asks DNS: the other commands
    and the serving workers do not depend on the resolver being up."""
    try:
        socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise SettingsError(
            f"invalid settings: ACCOUNTS_HOST: {settings.host!r} does not resolve to an"
            f" address ({exc.strerror or exc})"
        ) from None
