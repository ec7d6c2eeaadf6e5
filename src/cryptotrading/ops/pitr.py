"""Point-in-time recovery: ``backup restore ID --to TIME`` on either backend.

A PostgreSQL store is recovered with pgBackRest and the WAL archive
(:mod:`cryptotrading.ops.pitr_postgres`); a SQLite store from a full backup and the
change log archived with it (:mod:`cryptotrading.ops.pitr_sqlite`). Both return a
:class:`~cryptotrading.ops.pitr_result.PitrResult`.

``ID`` names what to restore: a store (``app``, ``market``, ``main``; the base backup
is the newest one that ended before the time), a backup of ``backup list`` (its store;
on SQLite that backup is the base, on PostgreSQL the base is still pgBackRest's newest
before the time), or ``STORE:LABEL`` with a pgBackRest backup label.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from cryptotrading.common.clock import parse_time
from cryptotrading.errors import ConfigurationError, ValidationError
from cryptotrading.ops import backup, pitr_postgres, pitr_sqlite
from cryptotrading.ops.pitr_result import PitrResult
from cryptotrading.stores import Stores

__all__ = ["PitrResult", "PitrUnavailableError", "parse_target", "resolve", "restore", "restore_to"]

#: Longest text accepted as a time to restore to (an ISO-8601 time is ~32 characters).
MAX_TIME_TEXT = 64
_LABEL = re.compile(r"\d{8}-\d{6}F(?:_\d{8}-\d{6}[DI])?")


class PitrUnavailableError(ConfigurationError):
    """Point-in-time recovery is not available for this store in this release."""

    default_hint = "Restore one of its backups instead (`cryptotrading backup restore ID`)."


def parse_target(text: str, now: datetime | None = None) -> datetime:
    """The time of ``--to``: ISO-8601 (UTC when no offset), not in the future.

    Anything else -- not a time, beyond the calendar, too long, in the future -- is a
    :class:`ValidationError` with a hint; nothing has been touched then."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TIME_TEXT:
        raise ValidationError(
            f"--to {str(text)[:MAX_TIME_TEXT]!r} is not a time to restore to",
            hint="Give an ISO-8601 time such as 2026-12-01T10:15:00Z (UTC when no offset).",
        )
    moment = parse_time(text.strip(), "--to time")
    return pitr_postgres.check_target(moment, now)


def resolve(stores: Stores, ident: str, directory: Path | None = None) -> tuple[str, str | None]:
    """``(store name, base backup or None)`` for the ``ID`` of ``backup restore --to``
    (see the module docstring); a NotFoundError when it names nothing."""
    names = {store.name for store in stores}
    if ident in names:
        return ident, None
    store, _sep, label = ident.partition(":")
    if store in names and _LABEL.fullmatch(label):
        return store, label
    manifest = backup.load_manifest(directory or backup.default_directory(stores), ident)
    if stores.get(manifest.store).backend == "postgresql":
        return manifest.store, None
    return manifest.store, manifest.id


def restore_to(
    stores: Stores,
    store_name: str,
    backup_id: str | None,
    target: datetime,
    *,
    force: bool = False,
) -> PitrResult:
    """Bring store *store_name* back to *target* from *backup_id* (None: the newest
    base backup before it), with pgBackRest on PostgreSQL, the change log on SQLite."""
    store = stores.get(store_name)
    if store.backend == "postgresql":
        return pitr_postgres.restore_to(stores, store_name, backup_id, target, force=force)
    return pitr_sqlite.restore_to(stores, store_name, backup_id, target, force=force)


def restore(
    stores: Stores,
    ident: str,
    to: str,
    directory: Path | None = None,
    *,
    force: bool = False,
) -> PitrResult:
    """``backup restore ID --to TIME``: the time is checked first (bad input touches
    nothing), then *ident* is resolved and the store restored."""
    target = parse_target(to)
    store_name, backup_id = resolve(stores, ident, directory)
    return restore_to(stores, store_name, backup_id, target, force=force)
