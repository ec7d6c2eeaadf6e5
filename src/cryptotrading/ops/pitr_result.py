"""What a point-in-time restore reports, on either backend (``backup restore --to``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptotrading.common.views import AsDict


@dataclass
class PitrResult(AsDict):
    """Outcome of bringing one store back to *target*.

    ``base_backup`` is the backup the restore started from (a pgBackRest label on
    PostgreSQL, a backup id of ``backup list`` on SQLite), ``base_backup_time`` when it
    ended; then either ``wal_bytes_replayed`` (PostgreSQL: WAL from the start of the base
    backup to where recovery stopped) or ``changes_replayed`` (SQLite: change-log rows).
    ``recovered_to`` is the commit time of the last transaction kept, when known.
    ``row_counts`` are the rows of every table of the restored store, ``phases`` the
    seconds each step took, ``kept_aside`` the previous database, never overwritten.
    """

    store: str
    backend: str
    target: str
    base_backup: str
    base_backup_time: str
    kept_aside: str
    seconds: float
    row_counts: dict[str, int] = field(default_factory=dict)
    wal_bytes_replayed: int | None = None
    changes_replayed: int | None = None
    recovered_to: str | None = None
    forced: bool = False
    phases: dict[str, float] = field(default_factory=dict)
    #: What the restore could not vouch for (e.g. the live change log was unreadable).
    warnings: list[str] = field(default_factory=list)
