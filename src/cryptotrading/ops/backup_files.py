"""The backup directory: creating it, marking it in use, and removing what killed
backups left behind.

Every backup, verification and restore holds a shared ``flock`` on the directory
while it works in it. Leftover removal takes the lock exclusively without waiting:
when it gets it, no process is working in the directory, so every ``*.partial``
file, ``.verify-*`` scratch directory and data file without a manifest is a
leftover of a killed run, whatever its age; when it does not, it removes nothing.
The kernel drops the lock of a killed process, so ``kill -9`` never leaves the
directory marked busy.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from cryptotrading.errors import DataDirError

#: Data file suffixes: a file with one of these and no manifest is a leftover.
DATA_SUFFIXES = (".db.gz", ".pgdump", ".tar")


def prepare(directory: Path) -> None:
    """Create *directory* (owner-only) if needed and check that it is writable."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(
            f"cannot create backup directory {directory}: {exc.strerror}",
            hint="Choose a writable directory with --dir, or fix the permissions.",
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise DataDirError(
            f"backup directory {directory} is not writable",
            hint="Choose a writable directory with --dir, or fix the permissions.",
        )


@contextlib.contextmanager
def writing(directory: Path, what: str) -> Iterator[None]:
    """Turn OS errors while writing a backup (disk full, read-only) into DataDirError."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataDirError(
            f"cannot write {what} in {directory}: {reason}",
            hint="Free disk space or choose another directory with --dir; "
            "the source database was not changed.",
        ) from None


@contextlib.contextmanager
def in_use(directory: Path) -> Iterator[None]:
    """Hold a shared lock on *directory* while inside: its files are not leftovers."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield  # not there (yet) or not readable: nothing of ours to protect
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)


def _leftovers(directory: Path) -> list[Path]:
    orphans = [
        path
        for suffix in DATA_SUFFIXES
        for path in directory.glob(f"*{suffix}")
        if not path.with_name(path.name.split(".", 1)[0] + ".json").exists()
    ]
    return [*directory.glob("*.partial*"), *directory.glob(".verify-*"), *orphans]


def remove_restore_leftovers(live: Path) -> list[Path]:
    """Delete the staged copies (``<db>.restore-<time>.partial``) that killed restores
    left beside *live* -- only when no restore is working in that directory (every
    SQLite restore holds :func:`in_use` on it); returns what was deleted."""
    directory = live.parent
    if not directory.is_dir():
        return []
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []  # a restore is running here: its staged file is not a leftover
        removed = []
        for path in directory.glob(f"{live.name}.restore-*.partial"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
        return removed
    finally:
        os.close(descriptor)


def remove_leftovers(directory: Path, older_than_seconds: float = 0.0) -> list[Path]:
    """Delete what killed backups and verifications left behind (``*.partial`` files,
    ``.verify-*`` scratch dirs, data files whose manifest was never written) that are
    older than *older_than_seconds* -- only when no backup, verification or restore
    is working in *directory* (otherwise nothing); returns what was deleted."""
    if not directory.is_dir():
        return []
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []  # another process is working here: its files are not leftovers
        cutoff = time.time() - older_than_seconds
        removed = []
        for path in _leftovers(directory):
            try:
                if path.lstat().st_mtime > cutoff:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
            except FileNotFoundError:
                continue
        return removed
    finally:
        os.close(descriptor)
