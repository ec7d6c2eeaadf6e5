"""User API keys: generated with :mod:`secrets`, shown once, stored as prefix + hash.

A key looks like ``ct_Ab3dE5fG_<43 url-safe characters>``. The first two parts
(``ct_Ab3dE5fG``) are the *lookup prefix*, stored in clear and unique, so a request
finds its user with one indexed query. The whole key is stored only as its SHA-256
digest. A fast hash is enough here -- unlike a password, the key carries 256 random
bits, so no dictionary or brute-force attack on a stolen digest is feasible, and a
slow hash would only add latency to every request. Digests are compared with
:func:`hmac.compare_digest` (constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from pydantic import SecretStr

SCHEME = "ct"
PREFIX_BYTES = 6  # 8 url-safe characters, 48 bits: unique lookup, not a secret
SECRET_BYTES = 32  # 256 bits of entropy
DIGEST_SCHEME = "sha256"
_KEY_PATTERN = re.compile(rf"^({SCHEME}_[A-Za-z0-9_-]{{8}})_[A-Za-z0-9_-]{{43}}$")


@dataclass(frozen=True)
class IssuedApiKey:
    """A freshly generated key: show :attr:`key` once, store :attr:`prefix` and
    :attr:`digest`."""

    key: SecretStr = field(repr=False)
    prefix: str
    digest: str = field(repr=False)


def generate() -> IssuedApiKey:
    """A new random API key with its lookup prefix and digest."""
    prefix = f"{SCHEME}_{secrets.token_urlsafe(PREFIX_BYTES)}"
    key = f"{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    return IssuedApiKey(SecretStr(key), prefix, digest(key))


def digest(key: str) -> str:
    """``sha256:<hex>`` of *key*."""
    return f"{DIGEST_SCHEME}:{hashlib.sha256(key.encode()).hexdigest()}"


def lookup_prefix(key: str) -> str | None:
    """The lookup prefix of a well-formed *key*, else None."""
    match = _KEY_PATTERN.match(key)
    return match.group(1) if match else None


def matches(key: str, stored_digest: str) -> bool:
    """True when *key* hashes to *stored_digest* (constant-time comparison)."""
    return hmac.compare_digest(digest(key).encode(), stored_digest.encode())
