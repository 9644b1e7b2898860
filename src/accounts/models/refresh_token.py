"""The ``refresh_tokens`` table: every refresh token a session was issued, by hash.

Spent tokens are kept (with ``used_at``) until their session goes, so that a replay
of one is recognised as theft rather than as an unknown token.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from accounts.models.base import Base, new_id, utcnow


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 of the token: the token itself has 256 bits of entropy, so a fast hash
    # is enough and lets the lookup be an index probe.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None] = mapped_column(default=None)
