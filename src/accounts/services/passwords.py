"""The rules a new password must pass: length, then the common-password and
same-as-email-or-name screens. Applied alike to registration, change and reset.
"""

from __future__ import annotations

from collections.abc import Set

from accounts.domain.errors import FieldError, InvalidInput
from accounts.domain.text import has_forbidden_characters
from accounts.domain.users import PASSWORD_MAX_LENGTH, check_password, check_password_policy


class PasswordRules:
    def __init__(self, common_passwords: Set[str]) -> None:
        self._common = common_passwords

    def check_new(self, field: str, password: str, *, email: str, name: str) -> str:
        """Raises: InvalidInput naming ``field`` and saying why."""
        try:
            check_password(password)
            check_password_policy(password, email=email, name=name, common=self._common)
        except ValueError as exc:
            raise InvalidInput(
                f"{field} {exc}", [FieldError(("body", field), str(exc), "value_error")]
            ) from None
        return password

    @staticmethod
    def check_given(field: str, password: str) -> None:
        """Refuse an oversized password before it reaches the hasher.

        Raises: InvalidInput naming ``field``.
        """
        if has_forbidden_characters(password, allow_controls=True):
            raise InvalidInput(
                f"{field} is not valid text",
                [FieldError(("body", field), "must be valid Unicode text", "value_error")],
            )
        if len(password) > PASSWORD_MAX_LENGTH:
            raise InvalidInput(
                f"{field} is too long",
                [
                    FieldError(
                        ("body", field),
                        f"must be at most {PASSWORD_MAX_LENGTH} characters",
                        "value_error",
                    )
                ],
            )
