"""SQLite side of backups: an online consistent copy, gzip, integrity checks, the swap."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import sqlite3
import zlib
from collections.abc import Iterable
from pathlib import Path

from cryptotrading.errors import StoreBusyError
from cryptotrading.migrations.environment import version_table

#: gzip level: 5 is within a few percent of 9's ratio on SQLite pages, at twice the speed.
GZIP_LEVEL = 5
CHUNK = 1 << 20

#: What a damaged or truncated gzip stream raises while being read.
CORRUPT_STREAM_ERRORS = (EOFError, OSError, zlib.error, gzip.BadGzipFile)


def online_copy(source: Path, target: Path, *, busy_timeout_ms: int) -> None:
    """Copy *source* to *target* with the SQLite online backup API, in one step.

    One step means one read transaction: the copy is the database as of a single
    commit, while other processes keep writing (WAL readers never block writers).
    """
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
        versions: dict[str, str | None] = {}
        for lineage in lineages:
            name = version_table(lineage)
            row = (
                connection.execute(f'SELECT version_num FROM "{name}"').fetchone()
                if name in existing
                else None
            )
            versions[lineage] = row[0] if row else None
        counts = {
            table: int(connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
            for table in sorted(tables)
            if table in existing
        }
        return versions, counts
    finally:
        connection.close()


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
    """Un-gzip *source* into *target* (fsynced); raises on a damaged stream."""
    with gzip.open(source, "rb") as zipped, target.open("wb") as out:
        shutil.copyfileobj(zipped, out, CHUNK)
        out.flush()
        os.fsync(out.fileno())


def swap_in(restored: Path, live: Path, aside: Path) -> None:
    """Make *restored* the live database; the old one is kept as *aside*.

    The live WAL is checkpointed first (its content belongs to the old file), the
    old file is hard-linked aside, then ``os.replace`` switches atomically: at every
    instant *live* names either the complete old or the complete new database.
    """
    if live.exists():
        connection = sqlite3.connect(live, timeout=5)
        try:
            busy, _log, _done = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            connection.close()
        if busy:
            raise StoreBusyError(
                f"cannot restore {live.name}: other connections keep its write-ahead log busy",
                hint="Stop the processes using the database, then run the restore again.",
            )
        try:
            os.link(live, aside)
        except OSError:
            shutil.copy2(live, aside)
    os.chmod(restored, 0o600)  # database files hold credentials: owner only
    os.replace(restored, live)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            live.with_name(live.name + suffix).unlink()
    directory = os.open(live.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
