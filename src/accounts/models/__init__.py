"""SQLAlchemy ORM models, one module per table."""

from accounts.models.auth_session import AuthSession
from accounts.models.base import Base
from accounts.models.refresh_token import RefreshToken
from accounts.models.signing_key import SigningKey
from accounts.models.user import User

__all__ = ["AuthSession", "Base", "RefreshToken", "SigningKey", "User"]
