"""Email: rendering messages from templates, and the two ways of sending them.

``SmtpMailer`` delivers over SMTP (plain, STARTTLS or implicit TLS). ``LogMailer``,
the embedded default, writes each message to the log so a developer can follow
the links without a mail server. Services never call a mailer directly: they
write to the outbox, and ``services.outbox.MailOutbox`` sends from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal, Protocol

import aiosmtplib
import structlog
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

logger = structlog.get_logger("accounts.mail")

SUBJECTS = {
    "verify_email": "Confirm your email address",
    "reset_password": "Reset your password",
}


@dataclass(frozen=True, slots=True)
class EmailContent:
    subject: str
    text: str
    html: str


class MailTemplates:
    """Plain-text and HTML bodies from ``accounts/templates/email``."""

    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("accounts", "templates/email"),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(self, template: str, **context: Any) -> EmailContent:
        return EmailContent(
            subject=SUBJECTS[template],
            text=self._env.get_template(f"{template}.txt").render(**context),
            html=self._env.get_template(f"{template}.html").render(**context),
        )


class DeliveryError(Exception):
    """The message could not be handed to the mail server; worth retrying."""


class Mailer(Protocol):
    async def send(self, to: str, content: EmailContent) -> None:
        """Deliver one message, or raise DeliveryError."""


class LogMailer:
    def __init__(self, sender: str) -> None:
        self._sender = sender

    async def send(self, to: str, content: EmailContent) -> None:
        logger.info(
            "email (not sent: no ACCOUNTS_SMTP_HOST)",
            sender=self._sender,
            to=to,
            subject=content.subject,
            body=content.text,
        )


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: Literal["none", "starttls", "ssl"]
    timeout: float
    sender: str


class SmtpMailer:
    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    async def send(self, to: str, content: EmailContent) -> None:
        message = EmailMessage()
        message["From"] = self._config.sender
        message["To"] = to
        message["Subject"] = content.subject
        message.set_content(content.text)
        message.add_alternative(content.html, subtype="html")
        config = self._config
        try:
            await aiosmtplib.send(
                message,
                hostname=config.host,
                port=config.port,
                username=config.username,
                password=config.password,
                use_tls=config.tls == "ssl",
                start_tls=config.tls == "starttls",
                timeout=config.timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}"[:400]) from exc
