"""Point-in-time recovery of a SQLite application store: a full backup, then the
change log replayed up to the asked moment.

1. The live store's unarchived log entries are archived first (when it can be read),
   so the archive reaches the present.
2. The newest signed full backup whose content predates the target is verified into
   a staged file beside the live database (the restore's own checks).
3. The archived entries after the backup's last logged change, up to the target
   (``changed_at`` <= target, in commit order), are replayed into the staged file:
   row images upserted, deletes applied, each entry also written back to the staged
   change log, so the result holds exactly the log it had at that moment. The capture
   triggers are off during the replay and put back before the commit.
4. Integrity and foreign keys are checked, then the staged file is swapped in the way
   ``backup restore`` swaps (the old file kept aside).

The recovery point is the last change logged at or before the target. SQLite gives a
trigger no transaction id, so a transaction still open at the target (the library's
last milliseconds) can be cut; a store that also holds candles (layout ``single``)
is refused: candles are restored to backups and imported again.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptotrading.common.clock import epoch_ms, utcnow
from cryptotrading.errors import CryptotradingError, NotFoundError, ValidationError
from cryptotrading.migrations.capture import LOG_TABLES
from cryptotrading.models import APP_LINEAGE, MARKET_LINEAGE
from cryptotrading.ops import backup, backup_files, backup_signing, backup_sqlite, changelog_archive
from cryptotrading.ops.backup_manifest import Manifest
from cryptotrading.ops.pitr_result import PitrResult
from cryptotrading.stores import Store, Stores

_LOG = LOG_TABLES[APP_LINEAGE]


def _target_ms(target: datetime) -> int:
    if target.tzinfo is None:
        target = target.replace(tzinfo=UTC)
    if target > utcnow():
        raise ValidationError(
            f"{target.isoformat()} is in the future",
            hint="Give a moment in the past (ISO 8601, UTC when no offset).",
        )
    return epoch_ms(target)


def _check_store(store: Store) -> Path:
    if store.path is None:
        raise ValidationError(
            f"store {store.name!r} is on PostgreSQL",
            hint="PostgreSQL stores recover to a point in time through pgBackRest.",
        )
    if MARKET_LINEAGE in store.lineages:
        raise ValidationError(
            f"store {store.name!r} holds candles: a SQLite market store restores to its "
            "backups, not to a point in time",
            hint="Restore a backup (`cryptotrading backup restore ID`) and import the "
            "candles since then again.",
        )
    return store.path


def _logged(staged: Path) -> tuple[int, int | None, dict[str, Any] | None]:
    """The staged copy's last log sequence number, its newest logged change time and
    its last logged entry (None when its log was trimmed empty)."""
    with sqlite3.connect(staged) as conn:
        conn.row_factory = sqlite3.Row
        seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (_LOG,)).fetchone()
        newest = conn.execute(f"SELECT max(changed_at) FROM {_LOG}").fetchone()
        last = conn.execute(f"SELECT * FROM {_LOG} ORDER BY seq DESC LIMIT 1").fetchone()
    conn.close()
    return (
        int(seq[0]) if seq else 0,
        int(newest[0]) if newest and newest[0] else None,
        None if last is None else dict(last),
    )


def _same_history(directory: Path, store: str, key: Any, last: dict[str, Any] | None) -> bool:
    """Whether a backup's last logged change is the archive's change of that number: a
    backup taken on a history that a later point-in-time restore abandoned is not."""
    if last is None:
        return True
    covered, entry = changelog_archive.entry_at(directory, store, key, int(last["seq"]))
    if not covered:
        return True
    return entry is not None and all(
        str(entry[f]) == str(last[f]) for f in ("table_name", "op", "row_key", "changed_at")
    )


def _candidates(
    directory: Path, store: Store, backup_id: str | None, target: int
) -> list[Manifest]:
    if backup_id is not None:
        return [backup.load_manifest(directory, backup_id)]
    found = [
        m
        for m in backup.list_backups(directory, store.name)
        if epoch_ms(datetime.fromisoformat(m.created_at)) <= target
    ]
    if not found:
        raise NotFoundError(
            f"no backup of store {store.name!r} in {directory} was made before the target",
            hint="Point-in-time recovery reaches back to the oldest kept full backup; "
            "`cryptotrading backup list` shows them.",
        )
    return found


def decode_value(value: Any) -> Any:
    """A row-image value back to what SQLite stored (see capture._sqlite_value)."""
    if isinstance(value, list) and value and value[0] == "r":
        return math.ldexp(int(value[2]), int(value[3])) if len(value) == 4 else float(value[1])
    if isinstance(value, list) and len(value) == 2 and value[0] == "b":
        return bytes.fromhex(value[1])
    return value


class _Replayer:
    """Applies log entries to the staged database on one sqlite3 connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.keys: dict[str, list[str]] = {}

    def key_columns(self, table: str) -> list[str]:
        if table not in self.keys:
            info = self.conn.execute(f'PRAGMA table_info("{table}")').fetchall()
            if not info:
                raise ValidationError(
                    f"the change log names table {table!r}, which the backup does not have",
                    hint="Recovery cannot cross a schema migration; choose a later backup.",
                )
            self.keys[table] = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5]]
        return self.keys[table]

    def apply(self, entry: dict[str, Any]) -> None:
        table = str(entry["table_name"])
        key = self.key_columns(table)
        quoted = f'"{table}"'
        if entry["op"] == "D":
            values = json.loads(entry["row_key"])
            where = " AND ".join(f'"{c}" = ?' for c in key)
            self.conn.execute(f"DELETE FROM {quoted} WHERE {where}", values)
        else:
            image = json.loads(entry["row_image"])
            columns = list(image)
            names = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join("?" for _ in columns)
            updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c not in key)
            conflict = ", ".join(f'"{c}"' for c in key)
            action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
            self.conn.execute(
                f"INSERT INTO {quoted} ({names}) VALUES ({marks})"
                f" ON CONFLICT ({conflict}) {action}",
                [decode_value(image[c]) for c in columns],
            )
        self.conn.execute(
            f"INSERT INTO {_LOG} (seq, table_name, op, row_key, row_image, changed_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [entry[f] for f in ("seq", "table_name", "op", "row_key", "row_image", "changed_at")],
        )


def _replay(
    staged: Path, directory: Path, store: str, after: int, target: int, key: Any
) -> tuple[int, int | None, int]:
    """Replay archived entries ``seq > after`` with ``changed_at <= target`` into
    *staged*; returns (entries replayed, changed_at and seq of the last)."""
    conn = sqlite3.connect(staged, isolation_level=None)
    replayed, reached, last = 0, None, after
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("BEGIN IMMEDIATE")
        triggers = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
            " AND name LIKE 'ct\\_capture\\_%' ESCAPE '\\'"
        ).fetchall()
        for name, _sql in triggers:
            conn.execute(f'DROP TRIGGER "{name}"')
        replayer = _Replayer(conn)
        expected = after + 1
        done = False
        for segment in changelog_archive.segments(directory, store, key):
            if segment.last_seq <= after:
                continue
            if segment.first_seq > expected:
                raise ValidationError(
                    f"the archived change log of store {store!r} has a gap: entries "
                    f"{expected}..{segment.first_seq - 1} are missing",
                    hint="Recover to a time covered by a later full backup.",
                )
            for entry in changelog_archive.read_entries(directory, segment):
                seq = int(entry["seq"])
                if seq <= after:
                    continue
                if int(entry["changed_at"]) > target:
                    done = True
                    break
                replayer.apply(entry)
                replayed, reached, expected = replayed + 1, int(entry["changed_at"]), seq + 1
                last = seq
            if done:
                break
        for _name, sql in triggers:
            conn.execute(sql)
        problems = conn.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise ValidationError(
                f"the recovered database would break {len(problems)} foreign key(s), "
                f"first in table {problems[0][0]!r}; nothing was restored",
                hint="Recover to another moment, or restore the base backup as it is.",
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    return replayed, reached, last


def restore_to(
    stores: Stores,
    store_name: str,
    backup_id: str | None,
    target: datetime,
    directory: Path | None = None,
    *,
    allow_unsigned: bool = False,
    force: bool = False,
) -> PitrResult:
    """Bring SQLite store *store_name* back to *target* (see the module docstring)."""
    started = time.perf_counter()
    phases: dict[str, float] = {}
    target_ms = _target_ms(target)
    store = stores.get(store_name)
    live = _check_store(store)
    directory = directory or backup.default_directory(stores)
    warnings: list[str] = []
    try:
        changelog_archive.archive_log(stores, directory, store.name)
    except CryptotradingError as exc:
        warnings.append(f"the live change log could not be archived: {exc.message}")
    phases["archive_log"] = _lap(started, phases)
    backup_signing.ensure_key(stores.settings)
    key = backup_signing.load_key(stores.settings)
    stores.close()
    backup_files.remove_restore_leftovers(live)
    with backup_files.in_use(directory), backup_files.in_use(live.parent):
        since = backup_sqlite.begin_restore(live, force=force)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        staged = live.with_name(f"{live.name}.restore-{stamp}.partial")
        try:
            base = None
            for manifest in _candidates(directory, store, backup_id, target_ms):
                staged.unlink(missing_ok=True)
                backup.stage_sqlite(
                    stores, directory, manifest, staged, allow_unsigned=allow_unsigned
                )
                after, newest, last_entry = _logged(staged)
                if (newest is None or newest <= target_ms) and _same_history(
                    directory, store.name, key, last_entry
                ):
                    base = manifest
                    break
            if base is None:
                raise ValidationError(
                    "no backup of the store's current history predates the target"
                    if backup_id is None
                    else f"backup {backup_id} holds changes made after the target, or of a "
                    "history a later point-in-time restore abandoned",
                    hint="Choose an older backup, or leave the backup out to pick one.",
                )
            phases["base_backup"] = _lap(started, phases)
            replayed, reached, last = _replay(staged, directory, store.name, after, target_ms, key)
            phases["replay"] = _lap(started, phases)
            counts = _row_counts(staged)
            if warnings and (reached is None or reached < target_ms):
                warnings.append(
                    "changes after the last archived one and before the target may be missing"
                )
            aside = live.with_name(f"{live.name}.pre-restore-{stamp}")
            existed = live.exists()
            backup_sqlite.swap_in(staged, live, aside, since=since, force=force)
            phases["swap"] = _lap(started, phases)
        finally:
            staged.unlink(missing_ok=True)
        abandoned = changelog_archive.cut_timeline(directory, store.name, last, stamp, key)
        if abandoned:
            warnings.append(
                f"{abandoned} archived change(s) after the recovery point were set aside "
                f"(changelog/{store.name}/abandoned-{stamp}); the log goes on from there"
            )
    return PitrResult(
        store=store.name,
        backend="sqlite",
        target=_iso(target_ms),
        base_backup=base.id,
        base_backup_time=base.created_at,
        kept_aside=str(aside) if existed else "",
        seconds=round(time.perf_counter() - started, 3),
        row_counts=counts,
        changes_replayed=replayed,
        recovered_to=None if reached is None else _iso(reached),
        forced=force,
        phases=phases,
        warnings=warnings,
    )


def _lap(started: float, phases: dict[str, float]) -> float:
    """Seconds since the previous phase ended."""
    return round(time.perf_counter() - started - sum(phases.values()), 3)


def _row_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
            )
        ]
        counts = {n: int(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}
    conn.close()
    return counts


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()
