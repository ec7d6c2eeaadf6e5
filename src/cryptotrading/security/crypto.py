"""AES-256-GCM sealing and the Argon2id key-derivation function of the vault.

A *sealed* value is ``version (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes)``.
Every call to :func:`seal` draws a fresh random 96-bit nonce from the operating
system, so the same plaintext never produces the same bytes twice and a nonce is
never knowingly reused under one key. The associated data binds a ciphertext to the
place it belongs (see :func:`associated_data`): opened anywhere else it fails.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from argon2.low_level import ARGON2_VERSION, Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cryptotrading.common.views import AsDict
from cryptotrading.errors import ConfigurationError

AEAD_ALGORITHM = "AES-256-GCM"
KDF_NAME = "argon2id"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
SALT_BYTES = 16
FORMAT_VERSION = 1
OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES
#: Upper bounds, so an altered metadata row cannot make an unlock take hours or all RAM.
MAX_TIME_COST = 64
MAX_MEMORY_KIB = 4 * 1024 * 1024


class SealError(Exception):
    """A sealed value did not open: wrong key, altered bytes or wrong associated data.

    Internal: callers translate it into a :class:`~cryptotrading.errors.VaultError`
    that names the affected row (never the value)."""


@dataclass(frozen=True)
class KdfParams(AsDict):
    """Argon2id cost parameters (RFC 9106). Defaults: the RFC's second recommended
    option, 64 MiB of memory, 3 passes, 4 lanes (~0.1 s on a 2-core machine)."""

    time_cost: int = 3
    memory_cost_kib: int = 64 * 1024
    parallelism: int = 4
    version: int = ARGON2_VERSION

    def __post_init__(self) -> None:
        if not (1 <= self.time_cost <= MAX_TIME_COST and 1 <= self.parallelism <= 64):
            raise ConfigurationError(
                f"Argon2id time_cost must be 1-{MAX_TIME_COST} and parallelism 1-64",
                hint="Use the defaults (64 MiB, 3 passes, 4 lanes) unless you measured.",
            )
        if self.memory_cost_kib > MAX_MEMORY_KIB:
            raise ConfigurationError(
                f"Argon2id memory_cost_kib above {MAX_MEMORY_KIB} (4 GiB) is refused",
                hint="A stored key with such parameters was altered; restore it from a backup.",
            )
        if self.memory_cost_kib < 8 * self.parallelism:
            raise ConfigurationError(
                "Argon2id memory_cost_kib must be at least 8 KiB per lane",
                hint="Use the defaults (64 MiB, 3 passes, 4 lanes) unless you measured.",
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KdfParams:
        try:
            return cls(
                time_cost=int(data["time_cost"]),
                memory_cost_kib=int(data["memory_cost_kib"]),
                parallelism=int(data["parallelism"]),
                version=int(data.get("version", ARGON2_VERSION)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"encryption key metadata has unusable KDF parameters: {exc!r}",
                hint="The encryption_key_metadata row was altered; restore it from a backup.",
            ) from None


def new_salt() -> bytes:
    """A random salt for one data key."""
    return os.urandom(SALT_BYTES)


def derive_key(secret: bytes, salt: bytes, params: KdfParams) -> bytes:
    """The 256-bit data key for *secret* and *salt* (Argon2id, memory-hard)."""
    return hash_secret_raw(
        secret=secret,
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_cost_kib,
        parallelism=params.parallelism,
        hash_len=KEY_BYTES,
        type=Type.ID,
        version=params.version,
    )


def associated_data(*parts: str | int | None) -> bytes:
    """Unambiguous associated data from *parts* (a JSON array, so ``("a|b", "c")``
    and ``("a", "b|c")`` never collide)."""
    return json.dumps(["cryptotrading", *parts], separators=(",", ":")).encode()


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate *plaintext* under *key*, bound to *aad*."""
    nonce = os.urandom(NONCE_BYTES)
    return bytes([FORMAT_VERSION]) + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """The plaintext of *sealed*; :class:`SealError` unless key, bytes and *aad* all match."""
    if len(sealed) < OVERHEAD or sealed[0] != FORMAT_VERSION:
        raise SealError("not a sealed value of a known format")
    nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, aad)
    except InvalidTag:
        raise SealError("authentication tag does not verify") from None


def nonce_of(sealed: bytes) -> bytes:
    """The nonce stored in *sealed* (for audits and tests)."""
    return sealed[1 : 1 + NONCE_BYTES]
