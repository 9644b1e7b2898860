"""SQLAlchemy ORM models, one module per table."""

from accounts.models.audit_event import AuditEvent
from accounts.models.auth_session import AuthSession
from accounts.models.base import Base
from accounts.models.one_time_token import OneTimeToken
from accounts.models.outbox_email import OutboxEmail
from accounts.models.refresh_token import RefreshToken
from accounts.models.signing_key import SigningKey
from accounts.models.user import User

__all__ = [
    "AuditEvent",
    "AuthSession",
    "Base",
    "OneTimeToken",
    "OutboxEmail",
    "RefreshToken",
    "SigningKey",
    "User",
]
