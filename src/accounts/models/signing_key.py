"""The ``signing_keys`` table: the RS256 key ring every instance shares."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from accounts.models.base import Base, utcnow


class SigningKey(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_key_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Set when a newer key takes over signing; the key stays published in the JWKS
    # until tokens it signed have expired.
    retired_at: Mapped[dt.datetime | None] = mapped_column(default=None)
