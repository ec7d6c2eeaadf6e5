"""SQLite side of backups: an online consistent copy, gzip, integrity checks, the swap.

A restore must not replace a file another process has open: that process would go
on writing into the replaced file and its commits would be lost. Every connection
to a WAL database holds a read lock on one byte of its ``-shm`` file (SQLite's
"dead-man switch", byte 128), so :func:`in_use` tells whether another process has
the database open, and :func:`keep_out` holds a write lock on that byte during the
swap, which makes new connections fail with SQLITE_BUSY instead of opening the
old file. :func:`live_state` fingerprints the file (and its WAL) so that a write
between the start of a restore and its swap is noticed too.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import os
import shutil
import sqlite3
import struct
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptotrading.errors import StoreBusyError
from cryptotrading.models import LINEAGES
from cryptotrading.ops.backup_lineage import Contents, versions_and_counts

#: gzip level: 5 is within a few percent of 9's ratio on SQLite pages, at twice the speed.
GZIP_LEVEL = 5
CHUNK = 1 << 20

#: What a damaged or truncated gzip stream raises while being read.
CORRUPT_STREAM_ERRORS = (EOFError, OSError, zlib.error, gzip.BadGzipFile)


#: The byte of ``<db>-shm`` every connection read-locks (SQLite's UNIX_SHM_DMS).
DMS_BYTE = 128
_OFD = sys.platform == "linux" and struct.calcsize("P") == 8 and hasattr(fcntl, "F_OFD_SETLK")


def create_private(path: Path) -> None:
    """Create the new empty file *path*, readable by its owner only from the start."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def online_copy(source: Path, target: Path, *, busy_timeout_ms: int) -> None:
    """Copy *source* to *target* with the SQLite online backup API, in one step.

    One step means one read transaction: the copy is the database as of a single
    commit, while other processes keep writing (WAL readers never block writers).
    """
    if not target.exists():
        create_private(target)  # SQLite would create it world-readable
    src = sqlite3.connect(source, timeout=busy_timeout_ms / 1000)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=-1)
            # The copy is a stand-alone file: no WAL next to it.
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()
    finally:
        src.close()


def describe(
    path: Path, lineages: Iterable[str], tables: Iterable[str]
) -> tuple[dict[str, str | None], dict[str, int]]:
    """Schema version per lineage and row count per table of the database at *path*."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        existing = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }

        def first_value(sql: str) -> Any:
            row = connection.execute(sql).fetchone()
            return row[0] if row else None

        return versions_and_counts(first_value, existing, lineages, tables)
    finally:
        connection.close()


def contents(path: Path, tables: Iterable[str]) -> Contents:
    """Versions of every lineage, row counts of *tables* and every table name."""
    versions, counts = describe(path, LINEAGES, tables)
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = frozenset(
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        )
    finally:
        connection.close()
    return Contents(versions, counts, names)


def integrity_errors(path: Path) -> list[str]:
    """``PRAGMA integrity_check`` and ``foreign_key_check`` problems (empty: healthy)."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return [f"cannot open: {exc}"]
    try:
        rows = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        problems = [] if rows == ["ok"] else rows[:5]
        violations = connection.execute("PRAGMA foreign_key_check").fetchall()
        problems += [f"foreign key: {t} row {r} -> {p}" for t, r, p, _ in violations[:5]]
        return problems
    except sqlite3.DatabaseError as exc:
        return [f"not a healthy SQLite database: {exc}"]
    finally:
        connection.close()


def compress(source: Path, target: Path) -> None:
    """gzip *source* into *target* (fsynced)."""
    with source.open("rb") as raw, target.open("wb") as out:
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as zipped:
            shutil.copyfileobj(raw, zipped, CHUNK)
        out.flush()
        os.fsync(out.fileno())


def decompress(source: Path, target: Path) -> None:
    """Un-gzip *source* into *target* (owner-only, fsynced); raises on a damaged stream."""
    if not target.exists():
        create_private(target)
    with gzip.open(source, "rb") as zipped, target.open("wb") as out:
        shutil.copyfileobj(zipped, out, CHUNK)
        out.flush()
        os.fsync(out.fileno())


@dataclass(frozen=True)
class LiveState:
    """Size and modification time of a database file, and the size of its WAL."""

    size: int
    mtime_ns: int
    wal_bytes: int


def live_state(live: Path) -> LiveState | None:
    """The fingerprint of *live* (None: there is no such file)."""
    try:
        info = live.stat()
    except FileNotFoundError:
        return None
    wal = live.with_name(live.name + "-wal")
    wal_bytes = wal.stat().st_size if wal.exists() else 0
    return LiveState(info.st_size, info.st_mtime_ns, wal_bytes)


def _lock_dms(descriptor: int) -> bool:
    """Take a write lock on the DMS byte without waiting; False if someone holds it.

    Linux: an open-file-description lock, which also sees this process's own SQLite
    connections and is not dropped when another descriptor of the file is closed.
    """
    try:
        if _OFD:
            record = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, DMS_BYTE, 1, 0)
            fcntl.fcntl(descriptor, fcntl.F_OFD_SETLK, record)
        else:
            fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, DMS_BYTE)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def keep_out(live: Path) -> Iterator[bool]:
    """Hold the DMS lock of *live* while inside; yields False when another connection
    has the database open. New connections fail (SQLITE_BUSY) while it is held."""
    shm = live.with_name(live.name + "-shm")
    created = not shm.exists()
    descriptor = os.open(shm, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        yield _lock_dms(descriptor)
    finally:
        os.close(descriptor)  # releases the lock
        if created and shm.exists() and shm.stat().st_size == 0:
            with contextlib.suppress(FileNotFoundError):
                shm.unlink()


def in_use(live: Path) -> bool:
    """Whether another connection (in any process) has the WAL database *live* open."""
    if not live.with_name(live.name + "-shm").exists():
        return False  # no WAL connection has been open since the last one closed
    with keep_out(live) as free:
        return not free


def _busy(live: Path, why: str) -> StoreBusyError:
    return StoreBusyError(
        f"cannot restore {live.name}: {why}; nothing was restored",
        hint="Stop the processes using the database (writers, `replicate`, the API), then "
        "restore again; --force restores anyway, and what they write afterwards is lost.",
    )


def checkpoint(live: Path) -> bool:
    """Move the WAL's content into *live* and empty it; False if readers kept it busy."""
    connection = sqlite3.connect(live, timeout=5)
    try:
        busy, _log, _done = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        connection.close()
    return not busy


def begin_restore(live: Path, *, force: bool) -> LiveState | None:
    """Refuse (unless *force*) when another process has *live* open; flush its WAL
    and return its fingerprint, which :func:`swap_in` compares before swapping."""
    if not live.exists():
        return None
    if not force and in_use(live):
        raise _busy(live, "another process has the database open")
    if not checkpoint(live) and not force:
        raise _busy(live, "other connections keep its write-ahead log busy")
    return live_state(live)


def swap_in(
    restored: Path, live: Path, aside: Path, *, since: LiveState | None = None, force: bool = False
) -> None:
    """Make *restored* the live database; the old one is kept as *aside*.

    Unless *force*: refused when another process has *live* open or it changed
    since *since* (:func:`begin_restore`). The old file is hard-linked aside, then
    ``os.replace`` switches atomically while new connections are kept out: at every
    instant *live* names either the complete old or the complete new database.
    """
    if live.exists():
        if not force and live_state(live) != since:
            raise _busy(live, "it was written to while the backup was being verified")
        if force:
            checkpoint(live)
        with keep_out(live) as free:
            if not force and not free:
                raise _busy(live, "another process has the database open")
            if not force and live_state(live) != since:
                raise _busy(live, "it was written to while the backup was being verified")
            try:
                os.link(live, aside)
            except OSError:
                shutil.copy2(live, aside)
            _replace(restored, live)
    else:
        _replace(restored, live)
    directory = os.open(live.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _replace(restored: Path, live: Path) -> None:
    os.chmod(restored, 0o600)  # database files hold credentials: owner only
    os.replace(restored, live)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            live.with_name(live.name + suffix).unlink()
