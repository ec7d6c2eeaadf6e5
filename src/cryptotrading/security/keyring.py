"""The master secret (environment or key file, never the database) and the data keys
derived from it, whose metadata lives in ``encryption_key_metadata``.

A data key is ``Argon2id(master secret, salt, params)``. Its row records the key id,
algorithms, KDF parameters, salt and a *key check*: the AES-GCM sealing of a constant
under the key, which proves a later derivation right without storing the key.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cryptotrading.errors import ConfigurationError, VaultError
from cryptotrading.models.security import EncryptionKeyMetadata
from cryptotrading.security.crypto import (
    AEAD_ALGORITHM,
    KDF_NAME,
    KdfParams,
    SealError,
    associated_data,
    derive_key,
    new_salt,
    open_sealed,
    seal,
)
from cryptotrading.settings import Settings

MASTER_KEY_ENV = "CRYPTOTRADING_MASTER_KEY"
MASTER_KEY_FILE_ENV = "CRYPTOTRADING_MASTER_KEY_FILE"
MIN_MASTER_BYTES = 16
KEY_CHECK_PLAINTEXT = b"cryptotrading vault key check v1"
ACTIVE = "active"
RETIRED = "retired"

_NO_MASTER_HINT = (
    f"Set {MASTER_KEY_ENV}, or put the secret in a file only you can read "
    f"(chmod 600) and name it in {MASTER_KEY_FILE_ENV}; e.g. "
    "`python -c 'import secrets; print(secrets.token_urlsafe(32))' > vault.key`."
)


class MasterSecret:
    """The vault's master secret. Its ``repr``/``str`` never show the value."""

    __slots__ = ("_value", "source")

    def __init__(self, value: bytes, source: str) -> None:
        if len(value) < MIN_MASTER_BYTES:
            raise ConfigurationError(
                f"master secret from {source} is too short ({len(value)} bytes, "
                f"at least {MIN_MASTER_BYTES} required)",
                hint=_NO_MASTER_HINT,
            )
        self._value = value
        self.source = source

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return f"MasterSecret(source={self.source!r}, value='********')"

    __str__ = __repr__


def load_master_secret(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> MasterSecret:
    """The master secret named by *settings* (key file) or the environment."""
    env = os.environ if environ is None else environ
    from_env = env.get(MASTER_KEY_ENV)
    key_file = settings.master_key_file
    if key_file is not None and from_env:
        raise ConfigurationError(
            f"two master secrets configured: {MASTER_KEY_ENV} and the key file {key_file}",
            hint=f"Unset {MASTER_KEY_ENV} or {MASTER_KEY_FILE_ENV} so only one source is left.",
        )
    if key_file is not None:
        return read_key_file(key_file)
    if from_env:
        return MasterSecret(from_env.strip().encode(), f"environment variable {MASTER_KEY_ENV}")
    raise VaultError("no vault master secret is configured", hint=_NO_MASTER_HINT)


def read_key_file(path: Path) -> MasterSecret:
    """The secret in *path*: must exist, be readable by its owner only, and be non-empty."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigurationError(
            f"master key file {path} cannot be read: {exc.strerror}",
            hint=f"Create the file or fix {MASTER_KEY_FILE_ENV}.",
        ) from None
    check_private_file(path, mode, "master key file")
    return MasterSecret(path.read_bytes().strip(), f"key file {path}")


def check_private_file(path: Path, mode: int, what: str, *, hint: str | None = None) -> None:
    """A :class:`ConfigurationError` unless *path* (of stat *mode*) is a regular file
    only its owner can access; *what* names it, *hint* goes with "not a regular file"."""
    if not stat.S_ISREG(mode):
        raise ConfigurationError(f"{what} {path} is not a regular file", hint=hint)
    if mode & 0o077:
        raise ConfigurationError(
            f"{what} {path} is accessible by other users (mode {stat.S_IMODE(mode):o})",
            hint=f"Run `chmod 600 {path}`.",
        )


@dataclass(frozen=True)
class DataKey:
    """A derived 256-bit data key and its id (the key bytes never appear in ``repr``)."""

    key_id: str
    key: bytes = field(repr=False)


def _key_check_aad(key_id: str) -> bytes:
    return associated_data("encryption_key_metadata", key_id, "key_check")


def new_key_id() -> str:
    """A unique, sortable key id such as ``vk-20260101T120000-3fa2c1d0``."""
    return f"vk-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def create_data_key(
    session: Session, master: MasterSecret, params: KdfParams | None = None
) -> DataKey:
    """Derive a new data key, record its metadata as active (flushed, not committed)."""
    params = params or KdfParams()
    key_id = new_key_id()
    salt = new_salt()
    key = derive_key(master.reveal(), salt, params)
    session.add(
        EncryptionKeyMetadata(
            key_id=key_id,
            algorithm=AEAD_ALGORITHM,
            kdf=KDF_NAME,
            kdf_params=params.as_dict(),
            salt=salt,
            key_check=seal(key, KEY_CHECK_PLAINTEXT, _key_check_aad(key_id)),
            status=ACTIVE,
        )
    )
    session.flush()
    return DataKey(key_id, key)


def unlock(row: EncryptionKeyMetadata, master: MasterSecret) -> DataKey:
    """Re-derive the data key of *row*; a :class:`VaultError` if *master* is not the
    secret it was made with."""
    if row.algorithm != AEAD_ALGORITHM or row.kdf != KDF_NAME:
        raise VaultError(
            f"vault key {row.key_id!r} uses {row.algorithm}/{row.kdf}, "
            f"this release supports {AEAD_ALGORITHM}/{KDF_NAME}",
            hint="Upgrade cryptotrading to the release that created this vault key.",
        )
    if row.key_check is None:
        raise VaultError(
            f"vault key {row.key_id!r} has no key check",
            hint="The encryption_key_metadata row was altered; restore it from a backup.",
        )
    key = derive_key(master.reveal(), row.salt, KdfParams.from_dict(row.kdf_params))
    try:
        open_sealed(key, row.key_check, _key_check_aad(row.key_id))
    except SealError:
        raise VaultError(
            f"the master secret from {master.source} does not unlock vault key {row.key_id!r}"
        ) from None
    return DataKey(row.key_id, key)


def key_rows(session: Session, status: str | None = None) -> list[EncryptionKeyMetadata]:
    """Metadata rows, oldest first, optionally only those with *status*."""
    query = select(EncryptionKeyMetadata).order_by(EncryptionKeyMetadata.id)
    if status is not None:
        query = query.where(EncryptionKeyMetadata.status == status)
    return list(session.scalars(query))


def key_row(session: Session, key_id: str) -> EncryptionKeyMetadata:
    row = session.scalar(
        select(EncryptionKeyMetadata).where(EncryptionKeyMetadata.key_id == key_id)
    )
    if row is None:
        raise VaultError(
            f"vault key {key_id!r} is referenced but has no metadata row",
            hint="Restore encryption_key_metadata from a backup; nothing was changed.",
        )
    return row
