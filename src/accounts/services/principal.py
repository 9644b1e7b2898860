"""Who is calling, and from where: values every service may take."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from accounts.models import User


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a request came from, as recorded on sessions and audit events."""

    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: a live session of an active user."""

    user: User
    session_id: uuid.UUID
    client: ClientInfo = field(default_factory=ClientInfo)
