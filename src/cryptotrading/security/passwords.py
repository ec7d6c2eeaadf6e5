"""Password policy and Argon2id password hashing (``argon2-cffi``).

Hashes are PHC strings (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``) that carry
their own parameters, so a login can tell when a hash was made with older parameters
and replace it (:func:`needs_rehash`).
"""

from __future__ import annotations

import base64
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import ARGON2_VERSION

from cryptotrading.errors import ValidationError

MIN_LENGTH = 12
MAX_LENGTH = 1024
MIN_DISTINCT = 5

#: Argon2id with RFC 9106's low-memory profile: 64 MiB, 3 passes, 4 lanes.
DEFAULT_HASHER = PasswordHasher()

_COMMON = frozenset(
    {
        "password1234",
        "123456789012",
        "qwertyuiop12",
        "passwordpassword",
        "letmeinletmein",
        "administrator",
        "cryptotrading",
    }
)


def check_policy(password: str, *, username: str = "", email: str = "") -> None:
    """Raise :class:`ValidationError` when *password* is too weak. The message never
    contains the password."""
    hint = (
        f"Choose a password of at least {MIN_LENGTH} characters, e.g. four random words; "
        "nothing was written."
    )
    if not password or not password.strip():
        raise ValidationError("the password is empty", hint=hint)
    if len(password) < MIN_LENGTH:
        raise ValidationError(
            f"the password is too short ({len(password)} characters, at least {MIN_LENGTH})",
            hint=hint,
        )
    if len(password) > MAX_LENGTH:
        raise ValidationError(f"the password is longer than {MAX_LENGTH} characters", hint=hint)
    if not _encodable(password):
        raise ValidationError(
            "the password contains characters that are not valid Unicode text", hint=hint
        )
    if len(set(password)) < MIN_DISTINCT:
        raise ValidationError(
            f"the password uses fewer than {MIN_DISTINCT} distinct characters", hint=hint
        )
    lowered = password.lower()
    if lowered in _COMMON:
        raise ValidationError("the password is on the list of common passwords", hint=hint)
    for name, value in (("username", username), ("email address", email)):
        if len(value) >= 3 and value.lower() in lowered:
            raise ValidationError(f"the password contains the {name}", hint=hint)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def hash_password(password: str, hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    """The Argon2id PHC string of *password*."""
    return hasher.hash(password)


def dummy_hash(hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    """A PHC string at *hasher*'s parameters with a random salt and digest.

    Verifying any password against it costs exactly what checking a real hash made by
    *hasher* costs, and fails (a 2**-256 chance aside). It is built without hashing, so
    it is free to prepare up front: logins for unknown users verify against it.
    """

    def b64(size: int) -> str:
        return base64.b64encode(secrets.token_bytes(size)).decode().rstrip("=")

    return (
        f"$argon2{hasher.type.name.lower()}$v={ARGON2_VERSION}"
        f"$m={hasher.memory_cost},t={hasher.time_cost},p={hasher.parallelism}"
        f"${b64(hasher.salt_len)}${b64(hasher.hash_len)}"
    )


def verify_password(
    password_hash: str, password: str, hasher: PasswordHasher = DEFAULT_HASHER
) -> bool:
    """True when *password* matches *password_hash* (constant-time inside argon2).
    Any text is verified at full cost, even text no stored password can contain."""
    try:
        return hasher.verify(password_hash, password.encode("utf-8", "surrogatepass"))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str, hasher: PasswordHasher = DEFAULT_HASHER) -> bool:
    """True when *password_hash* was made with other parameters than *hasher*'s."""
    try:
        return hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
