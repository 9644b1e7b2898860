"""The audit event types (the contract's list)."""

from __future__ import annotations

import enum


class AuditEventType(enum.StrEnum):
    USER_REGISTERED = "user.registered"
    USER_LOGIN_SUCCEEDED = "user.login_succeeded"
    USER_LOGIN_FAILED = "user.login_failed"
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    USER_PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 - an event name
    USER_PASSWORD_RESET = "user.password_reset"  # noqa: S105 - an event name
    USER_EMAIL_VERIFIED = "user.email_verified"
    SESSION_REVOKED = "session.revoked"
    SESSION_REFRESH_REUSED = "session.refresh_reused"
