"""The application store's change log, archived beside the backups and then trimmed.

Point-in-time recovery of a SQLite application store replays the change log from a
full backup up to the asked moment, so the log must outlive the store's own copy of
it. :func:`archive_log` copies every entry not yet archived into a *segment* under
``<backup dir>/changelog/<store>/``: ``<first>-<last>.jsonl.gz`` (one JSON entry per
line, gzip) and ``<first>-<last>.json`` (sequence range, time range, entry count,
SHA-256 of the data file, HMAC signature with the backup key), written data first,
manifest last, each via a temporary name and ``os.replace``: a killed archive leaves
no segment that looks whole. :func:`trim_logs` then deletes entries that are both
archived and applied by every registered replica (``replica_readers``); the market
logs, which recovery does not need, are trimmed below the replicas alone.

Segments older than the oldest kept full backup are pruned with the backups.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from cryptotrading.common.views import AsDict
from cryptotrading.db.engine import READ_ONLY
from cryptotrading.db.session import translate_errors
from cryptotrading.errors import ValidationError
from cryptotrading.migrations.capture import LOG_TABLES
from cryptotrading.models import APP_LINEAGE
from cryptotrading.ops import backup_signing, changelog
from cryptotrading.ops.changelog import Position
from cryptotrading.ops.replicated import LINEAGES
from cryptotrading.ops.replication import reader_positions
from cryptotrading.stores import Stores

SEGMENT_ROWS = 50_000
PRUNE_MARGIN_MS = 3_600_000
_SEGMENT = re.compile(r"(\d{12})-(\d{12})\.json")
_FIELDS = ("seq", "table_name", "op", "row_key", "row_image", "changed_at")


@dataclass(frozen=True)
class Segment:
    """One archived stretch of the change log (its manifest)."""

    store: str
    first_seq: int
    last_seq: int
    first_changed_at: int
    last_changed_at: int
    entries: int
    sha256: str
    file: str
    signature: str = ""

    def signed_fields(self) -> dict[str, Any]:
        fields = dict(self.__dict__)
        del fields["signature"]
        return fields


@dataclass
class ArchiveResult(AsDict):
    """What one archive run did."""

    store: str
    segments: int = 0
    entries: int = 0
    archived_through: int = 0
    trimmed: dict[str, int] | None = None


def segment_dir(directory: Path, store: str) -> Path:
    return directory / "changelog" / store


def _name(first: int, last: int) -> str:
    return f"{first:012d}-{last:012d}"


def _bad(path: Path, why: str) -> ValidationError:
    return ValidationError(
        f"change-log segment {path.name} is not usable: {why}",
        hint="Point-in-time recovery needs every segment since the base backup intact; "
        "restore to a backup (without --to) or to a time before the damage.",
    )


def read_segment_manifest(path: Path, key: backup_signing.BackupKey) -> Segment:
    """A segment's manifest, checked: well formed, signed by *key*, file name agrees."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        segment = Segment(
            store=str(data["store"]),
            first_seq=int(data["first_seq"]),
            last_seq=int(data["last_seq"]),
            first_changed_at=int(data["first_changed_at"]),
            last_changed_at=int(data["last_changed_at"]),
            entries=int(data["entries"]),
            sha256=str(data["sha256"]),
            file=str(data["file"]),
            signature=str(data.get("signature", "")),
        )
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise _bad(path, f"unreadable manifest ({type(exc).__name__})") from None
    status, why = backup_signing.check(key, segment.signed_fields(), segment.signature)
    if status != "valid":
        raise _bad(path, f"signature {status}: {why}")
    if path.name != f"{_name(segment.first_seq, segment.last_seq)}.json" or segment.file != (
        f"{_name(segment.first_seq, segment.last_seq)}.jsonl.gz"
    ):
        raise _bad(path, "its name does not match its range")
    return segment


def segments(directory: Path, store: str, key: backup_signing.BackupKey) -> list[Segment]:
    """Every whole segment of *store*, oldest first (manifests checked)."""
    folder = segment_dir(directory, store)
    if not folder.is_dir():
        return []
    found = [
        read_segment_manifest(path, key)
        for path in sorted(folder.iterdir())
        if _SEGMENT.fullmatch(path.name)
    ]
    return sorted(found, key=lambda s: s.first_seq)


def read_entries(directory: Path, segment: Segment) -> Iterator[dict[str, Any]]:
    """The entries of *segment*, after checking the data file's SHA-256."""
    path = segment_dir(directory, segment.store) / segment.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _bad(path, f"data file unreadable ({exc.strerror})") from None
    if hashlib.sha256(data).hexdigest() != segment.sha256:
        raise _bad(path, "its SHA-256 differs from the signed manifest")
    count = 0
    for line in gzip.decompress(data).splitlines():
        entry = json.loads(line)
        count += 1
        yield entry
    if count != segment.entries:
        raise _bad(path, f"{count} entries, the manifest says {segment.entries}")


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _write_segment(
    directory: Path, store: str, key: backup_signing.BackupKey, rows: list[dict[str, Any]]
) -> Segment:
    first, last = int(rows[0]["seq"]), int(rows[-1]["seq"])
    body = b"".join(
        json.dumps({f: row[f] for f in _FIELDS}, separators=(",", ":")).encode() + b"\n"
        for row in rows
    )
    data = gzip.compress(body, compresslevel=6, mtime=0)
    folder = segment_dir(directory, store)
    folder.mkdir(parents=True, exist_ok=True)
    name = _name(first, last)
    unsigned = Segment(
        store=store,
        first_seq=first,
        last_seq=last,
        first_changed_at=min(int(r["changed_at"]) for r in rows),
        last_changed_at=max(int(r["changed_at"]) for r in rows),
        entries=len(rows),
        sha256=hashlib.sha256(data).hexdigest(),
        file=f"{name}.jsonl.gz",
    )
    signature = backup_signing.sign(key, unsigned.signed_fields())
    segment = Segment(**{**unsigned.__dict__, "signature": signature})
    _write_atomic(folder / segment.file, data)
    _write_atomic(folder / f"{name}.json", json.dumps(segment.__dict__, indent=1).encode())
    return segment


def _key(stores: Stores, directory: Path) -> backup_signing.BackupKey:
    backup_signing.ensure_key(stores.settings)
    backup_signing.check_outside(stores.settings, directory)
    return backup_signing.load_key(stores.settings)


def archived_through(directory: Path, store: str, key: backup_signing.BackupKey) -> int:
    found = segments(directory, store, key)
    return found[-1].last_seq if found else 0


def archive_log(stores: Stores, directory: Path, store_name: str | None = None) -> ArchiveResult:
    """Copy the application store's unarchived change-log entries into segments."""
    store = stores.get(store_name) if store_name else stores.primary_for(APP_LINEAGE)
    key = _key(stores, directory)
    result = ArchiveResult(store.name)
    done = archived_through(directory, store.name, key)
    table = changelog.log_table(LOG_TABLES[APP_LINEAGE])
    with translate_errors(store.name), stores.engine(store).connect() as connection:
        connection = connection.execution_options(**{READ_ONLY: True})
        while True:
            query = select(table).where(table.c.seq > done).order_by(table.c.seq)
            rows = [dict(r) for r in connection.execute(query.limit(SEGMENT_ROWS)).mappings()]
            if not rows:
                break
            if int(rows[0]["seq"]) != done + 1 and done:
                raise ValidationError(
                    f"the change log of store {store.name!r} continues at {rows[0]['seq']} "
                    f"but the archive ends at {done}: entries were lost",
                    hint="Take a full backup now (`cryptotrading backup create`); point-in-time "
                    "recovery works from that backup on.",
                )
            _write_segment(directory, store.name, key, rows)
            done = int(rows[-1]["seq"])
            result.segments += 1
            result.entries += len(rows)
    result.archived_through = done
    return result


def _min_reader(stores: Stores, lineage: str, name: str) -> Position | None:
    """The least advanced registered replica position in log *name* (None: no reader)."""
    positions = [c.logs[name] for c in reader_positions(stores, lineage) if name in c.logs]
    if not positions:
        return None
    if positions[0].prev is None:
        return min(positions, key=lambda p: p.seq)
    return min(positions, key=lambda p: changelog.xmin(p.prev or "0:0:"))


def trim_logs(stores: Stores, directory: Path) -> dict[str, int]:
    """Delete change-log entries every reader has applied (and, for the application
    log on SQLite, that are archived). Returns entries deleted per log."""
    deleted: dict[str, int] = {}
    for lineage in LINEAGES:
        store = stores.primary_for(lineage)
        for name in changelog.log_names(lineage):
            limit = _min_reader(stores, lineage, name)
            table = changelog.log_table(name)
            with translate_errors(store.name), stores.engine(store).begin() as connection:
                if limit is None:  # no replica reads it: only the archive counts
                    top = connection.execute(select(func.max(table.c.seq))).scalar() or 0
                    limit = Position(int(top))
                    if store.backend == "postgresql":
                        limit = Position(0, changelog.snapshot(connection), None)
                if name == LOG_TABLES[APP_LINEAGE] and store.backend == "sqlite":
                    archived = archived_through(directory, store.name, _key(stores, directory))
                    limit = Position(min(limit.seq, archived))
                deleted[name] = changelog.trim(connection, name, limit)
    return deleted


def cut_timeline(
    directory: Path, store: str, last_kept: int, label: str, key: backup_signing.BackupKey
) -> int:
    """After a point-in-time restore to entry *last_kept*: the archived entries after it
    belong to an abandoned history. Their segments move to ``abandoned-<label>/`` (kept,
    never replayed again), a segment holding both is rewritten up to *last_kept*, and
    new changes continue the log at ``last_kept + 1``. Returns entries set aside."""
    folder = segment_dir(directory, store)
    aside = folder / f"abandoned-{label}"
    moved = 0
    for segment in segments(directory, store, key):
        if segment.last_seq <= last_kept:
            continue
        aside.mkdir(parents=True, exist_ok=True)
        if segment.first_seq <= last_kept:
            kept = [e for e in read_entries(directory, segment) if int(e["seq"]) <= last_kept]
            moved += segment.entries - len(kept)
            _move(folder, aside, segment)
            _write_segment(directory, store, key, kept)
        else:
            moved += segment.entries
            _move(folder, aside, segment)
    return moved


def _move(folder: Path, aside: Path, segment: Segment) -> None:
    name = _name(segment.first_seq, segment.last_seq)
    os.replace(folder / f"{name}.json", aside / f"{name}.json")  # manifest first: never half
    os.replace(folder / segment.file, aside / segment.file)


def entry_at(
    directory: Path, store: str, key: backup_signing.BackupKey, seq: int
) -> tuple[bool, dict[str, Any] | None]:
    """(covered, entry): whether the archive's current history reaches *seq*, and the
    entry it holds there (None when *seq* lies before the archive began)."""
    found = segments(directory, store, key)
    if not found or seq < found[0].first_seq:
        return False, None
    for segment in found:
        if segment.first_seq <= seq <= segment.last_seq:
            for entry in read_entries(directory, segment):
                if int(entry["seq"]) == seq:
                    return True, entry
    return True, None


def prune_segments(directory: Path, store: str, oldest_backup_ms: int) -> int:
    """Delete the segments of *store* holding only changes made an hour or more before
    its oldest kept full backup began (that backup contains them; the hour covers a
    transaction that logged before the backup began and committed after its copy);
    returns segments removed."""
    folder = segment_dir(directory, store)
    if not folder.is_dir():
        return 0
    removed = 0
    for path in sorted(folder.iterdir()):
        if not _SEGMENT.fullmatch(path.name):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            last_changed, file = int(data["last_changed_at"]), str(data["file"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours to judge: verification reports it
        if last_changed < oldest_backup_ms - PRUNE_MARGIN_MS and "/" not in file:
            path.unlink()  # manifest first: a half-pruned segment is never read
            (folder / file).unlink(missing_ok=True)
            removed += 1
    return removed


def after_restore(
    key: backup_signing.BackupKey, directory: Path, store: str, database: Path
) -> int:
    """After *database* was replaced by a backup: the archived history after the
    backup's last logged change is set aside (:func:`cut_timeline`)."""
    with sqlite3.connect(database) as conn:
        row = conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = ?", (LOG_TABLES[APP_LINEAGE],)
        ).fetchone()
    conn.close()
    label = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return cut_timeline(directory, store, int(row[0]) if row else 0, label, key)
