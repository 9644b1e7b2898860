"""Rules for the values a user is made of: email, name and password.

Each ``normalize_*``/``check_*`` function returns the canonical value or raises
``ValueError`` with a message fit to show the client; the edges turn that into
a 422 naming the field.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Container

from email_validator import EmailNotValidError, validate_email

from accounts.domain.text import has_forbidden_characters

EMAIL_MAX_LENGTH = 254
# Case folding can lengthen a string ("ß" -> "ss"), so keys get more room than emails.
EMAIL_KEY_MAX_LENGTH = 400
NAME_MAX_LENGTH = 100
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256


def normalize_email(value: str) -> str:
    """Validate an address and return it in canonical form (domain lower-cased, NFC)."""
    value = value.strip()
    if len(value) > EMAIL_MAX_LENGTH:
        raise ValueError(f"must be at most {EMAIL_MAX_LENGTH} characters")
    if has_forbidden_characters(value):
        raise ValueError("must not contain control characters")
    try:
        # No DNS look-up: deliverability is proven by the verification email, and a
        # network call on the request path would make registration slow and flaky.
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address: {exc}") from None
    return result.normalized


def email_key(email: str) -> str:
    """The key that makes emails unique case-insensitively (the whole address case-folded).

    RFC 5321 lets a local part be case-sensitive, but no mail provider treats it so,
    and two accounts that differ only in case are a support and phishing hazard.
    """
    return unicodedata.normalize("NFC", email.strip().casefold())


def lookup_key(email: str) -> str:
    """The key to find an account by an email someone typed (login, password reset).

    Forgiving: it normalises the way registration did when it can, and otherwise
    just lower-cases, so a malformed address simply matches nothing.
    """
    try:
        return email_key(normalize_email(email))
    except ValueError:
        return email_key(email)


def name_key(name: str) -> str:
    """The form of a name that search matches against (lower-cased in Python, Unicode-aware)."""
    return name.lower()


def normalize_name(value: str) -> str:
    """Trim a display name and check it is 1-100 characters with no control characters."""
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if len(value) > NAME_MAX_LENGTH:
        raise ValueError(f"must be at most {NAME_MAX_LENGTH} characters")
    if has_forbidden_characters(value):
        raise ValueError("must not contain control characters")
    return value


def normalize_password(password: str) -> str:
    """The form a password is hashed and screened in: Unicode NFKC.

    NIST SP 800-63B asks for it: the same password typed on two systems that encode
    accents differently ("é" as one code point, or "e" and a combining accent), or
    with full-width letters, is the same password. Length is checked on the password
    as typed.
    """
    return unicodedata.normalize("NFKC", password)


def check_password(value: str) -> str:
    """Check a new password's length (NIST SP 800-63B: length, no composition rules).

    The minimum holds as typed and as hashed: normalisation can shorten a password
    (eight "e" + combining accent pairs are four "é").
    """
    if min(len(value), len(normalize_password(value))) < PASSWORD_MIN_LENGTH:
        raise ValueError(f"must be at least {PASSWORD_MIN_LENGTH} characters")
    if len(value) > PASSWORD_MAX_LENGTH:
        raise ValueError(f"must be at most {PASSWORD_MAX_LENGTH} characters")
    if has_forbidden_characters(value, allow_controls=True):
        raise ValueError("must be valid Unicode text")
    return value


def check_password_policy(password: str, *, email: str, name: str, common: Container[str]) -> str:
    """Refuse passwords that are easy to guess: common ones, and the user's email or name.

    NIST SP 800-63B asks for exactly this screening (and no composition rules).
    """
    folded = normalize_password(password).casefold()
    if folded in common:
        raise ValueError("is one of the most common passwords; choose another")
    if folded in {email.casefold(), email.split("@", 1)[0].casefold()}:
        raise ValueError("must not be your email address")
    if folded == name.strip().casefold():
        raise ValueError("must not be your name")
    return password
