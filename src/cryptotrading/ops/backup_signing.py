"""The backup key and the HMAC-SHA256 that authenticates every backup manifest.

``init`` creates the key, 32 random bytes as hex, in ``<data_dir>/backup.key``
(mode 0600, beside the databases; the setting ``backup_key_file`` /
``CRYPTOTRADING_BACKUP_KEY_FILE`` may name another file). It never lives in the
backup directory: whoever can write the backups must not be able to re-sign an
edited manifest. The signature covers every field of the manifest except itself,
serialised canonically; it reads ``hmac-sha256:<key id>:<hex digest>`` where the
key id (a hash of the key, not the key) tells which key signed it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptotrading.errors import ConfigurationError, NotFoundError
from cryptotrading.security.keyring import check_private_file
from cryptotrading.settings import Settings

KEY_FILE_NAME = "backup.key"
KEY_FILE_ENV = "CRYPTOTRADING_BACKUP_KEY_FILE"
ALGORITHM = "hmac-sha256"
KEY_BYTES = 32
#: A key file longer than this is not one of ours.
MAX_KEY_FILE_BYTES = 4096

_LOST_KEY_HINT = (
    f"Point {KEY_FILE_ENV} at a saved copy of the key, or restore with --allow-unsigned "
    "(the content is still checked against the store's schema lineage, but the manifest "
    "cannot be authenticated)."
)


@dataclass(frozen=True)
class BackupKey:
    """The secret that signs manifests (never shown in ``repr``) and where it came from."""

    path: Path
    secret: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        """A short public name of the key: a hash of it, not the key."""
        return hashlib.sha256(b"cryptotrading backup key id\0" + self.secret).hexdigest()[:12]


def key_path(settings: Settings) -> Path:
    """The key file of *settings*: the setting, else ``<data_dir>/backup.key``."""
    return settings.backup_key_file or settings.data_dir / KEY_FILE_NAME


def ensure_key(settings: Settings) -> Path:
    """Create the backup key (0600 from creation) unless it exists; returns its path."""
    path = key_path(settings)
    if path.exists():
        return path
    if settings.backup_key_file is None:
        from cryptotrading.stores import ensure_data_dir  # the data dir, created owner-only

        ensure_data_dir(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path  # another process created it first
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the backup key {path}: {exc.strerror}",
            hint=f"Make its directory writable or point {KEY_FILE_ENV} elsewhere.",
        ) from None
    try:
        os.write(descriptor, (secrets.token_hex(KEY_BYTES) + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return path


def load_key(settings: Settings) -> BackupKey:
    """The backup key; a named error when it is missing, readable by others or bad."""
    path = key_path(settings)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise NotFoundError(
            f"the backup key {path} is missing (lost with the data directory?), so backup "
            "manifests cannot be authenticated",
            hint=_LOST_KEY_HINT,
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"the backup key {path} cannot be read: {exc.strerror}",
            hint=f"Fix its permissions or point {KEY_FILE_ENV} at a readable copy.",
        ) from None
    check_private_file(path, mode, "the backup key", hint=_LOST_KEY_HINT)
    try:
        with path.open("rb") as handle:
            secret = handle.read(MAX_KEY_FILE_BYTES + 1).strip()
    except OSError as exc:
        raise ConfigurationError(
            f"the backup key {path} cannot be read: {exc.strerror}", hint=_LOST_KEY_HINT
        ) from None
    if not 16 <= len(secret) <= MAX_KEY_FILE_BYTES:
        raise ConfigurationError(
            f"the backup key {path} is not a backup key ({len(secret)} bytes)",
            hint=_LOST_KEY_HINT,
        )
    return BackupKey(path, secret)


def check_outside(settings: Settings, directory: Path) -> None:
    """Refuse a backup directory that holds the key: it would sign its own forgeries."""
    key = key_path(settings).resolve()
    where = directory.resolve()
    if key.parent == where or where in key.parents:
        raise ConfigurationError(
            f"the backup key {key} is inside the backup directory {where}",
            hint=f"Back up into another directory (--dir), or move the key and set {KEY_FILE_ENV}.",
        )


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: the fields as sorted, compact, ASCII JSON."""
    return json.dumps(
        dict(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def sign(key: BackupKey, fields: Mapping[str, Any]) -> str:
    digest = hmac.new(key.secret, canonical(fields), hashlib.sha256).hexdigest()
    return f"{ALGORITHM}:{key.key_id}:{digest}"


#: Outcomes of :func:`check` besides ``valid``.
ALTERED = "altered"
OTHER_KEY = "other key"


def check(key: BackupKey, fields: Mapping[str, Any], signature: str) -> tuple[str, str]:
    """``("valid", "")``, or why *signature* does not authenticate *fields* under *key*:
    ``("altered", why)`` -- edited after it was signed with this key, or not one of our
    signatures -- or ``("other key", why)`` -- signed with a key this one is not."""
    parts = signature.split(":")
    if len(parts) != 3 or parts[0] != ALGORITHM:
        return ALTERED, f"the signature is not of the form {ALGORITHM}:<key id>:<digest>"
    if hmac.compare_digest(sign(key, fields).encode(), signature.encode()):
        return "valid", ""
    if parts[1] != key.key_id:
        return OTHER_KEY, (
            f"signed with key {parts[1][:16]!r}, but {key.path} holds key {key.key_id!r} "
            "(the key was replaced, or the manifest was edited)"
        )
    return ALTERED, "the manifest was altered after it was signed (HMAC-SHA256 does not match)"
