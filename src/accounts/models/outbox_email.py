"""The ``outbox_emails`` table: the durable queue of messages to send.

A message is written in the same transaction as whatever it announces (a token), so
the two exist together or not at all. A dispatcher claims due messages with a lease
(``claimed_until``), sends them, and marks them sent, scrubbing their bodies (which
hold one-time links); failures are retried with backoff and, after the last attempt,
kept as failed and logged, never dropped.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from accounts.models.base import Base, new_id, utcnow


class OutboxEmail(Base):
    __tablename__ = "outbox_emails"
    __table_args__ = (Index("ix_outbox_emails_due", "sent_at", "failed_at", "next_attempt_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    failed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
