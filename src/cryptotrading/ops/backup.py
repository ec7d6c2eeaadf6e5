"""Verified, compressed backups with a manifest, rotation and an atomic restore.

A backup of one store is two files in the backup directory (default
``<data_dir>/backups``): the data (``<id>.db.gz`` -- a gzipped SQLite online copy --
or ``<id>.pgdump`` -- ``pg_dump -Fc``) and ``<id>.json``, the manifest (sha256,
size, schema versions, row counts, time). The manifest is written last: a backup
without one never finished and is ignored. ``verify`` checks the checksum and
restores into a scratch copy that must pass the integrity check and match the
manifest's row counts; ``restore`` does the same, then swaps the verified copy in,
keeping the old database aside. The candle archive (Parquet files outside the
databases) is backed up the same way as the pseudo-store ``archive``
(:mod:`cryptotrading.ops.backup_archive`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.engine import make_url

from cryptotrading.db.engine import normalize_url
from cryptotrading.errors import DataDirError, NotFoundError, StoreError, ValidationError
from cryptotrading.models import lineage_tables
from cryptotrading.ops import backup_archive, backup_postgres, backup_sqlite
from cryptotrading.stores import Store, Stores

Kind = Literal["daily", "weekly"]
KINDS: tuple[str, ...] = ("daily", "weekly")
MANIFEST_FORMAT = 1
DEFAULT_KEEP_DAILY = 7
DEFAULT_KEEP_WEEKLY = 4
#: Leftovers of killed backups older than this are removed by prune.
STALE_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class Manifest:
    """What one backup holds, and how to check it."""

    id: str
    store: str
    backend: str
    kind: str
    file: str
    sha256: str
    size_bytes: int
    schema_versions: dict[str, str | None]
    row_counts: dict[str, int]
    created_at: str
    seconds: float
    source: str
    format: int = MANIFEST_FORMAT

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def total_rows(self) -> int:
        return sum(self.row_counts.values())


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Verification:
    """Outcome of ``backup verify``: every check, and whether all passed."""

    id: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def failures(self) -> str:
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.ok)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}


@dataclass(frozen=True)
class Restored:
    """Outcome of ``backup restore``: which store, and where the old data was kept."""

    id: str
    store: str
    kept_aside: str
    verification: Verification

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "store": self.store,
            "kept_aside": self.kept_aside,
            "verification": self.verification.as_dict(),
        }


def default_directory(stores: Stores) -> Path:
    return stores.settings.data_dir / "backups"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S%fZ")


def _tables(store: Store) -> list[str]:
    return [table.name for lineage in store.lineages for table in lineage_tables(lineage)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _prepare_directory(directory: Path) -> None:
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
def _writing(directory: Path, what: str) -> Iterator[None]:
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


def _write_manifest(directory: Path, manifest: Manifest) -> None:
    final = directory / f"{manifest.id}.json"
    partial = final.with_suffix(".json.partial")
    with partial.open("w") as handle:
        json.dump(manifest.as_dict(), handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, final)


@dataclass(frozen=True)
class _Pending:
    """A backup being written: its id, its data file's final and partial paths."""

    directory: Path
    id: str
    store: str
    backend: str
    kind: str
    now: datetime
    started: float
    final: Path
    partial: Path

    @classmethod
    def start(cls, directory: Path, store: str, backend: str, kind: str, suffix: str) -> _Pending:
        _prepare_directory(directory)
        now = datetime.now(UTC)
        backup_id = f"{store}-{kind}-{_stamp(now)}"
        final = directory / f"{backup_id}{suffix}"
        partial = directory / f"{backup_id}{suffix}.partial"
        return cls(
            directory, backup_id, store, backend, kind, now, time.perf_counter(), final, partial
        )

    def finish(
        self, versions: dict[str, str | None], counts: dict[str, int], source: str
    ) -> Manifest:
        """Move the finished data file into place, then write its manifest (last)."""
        os.chmod(self.partial, 0o600)  # backups hold credentials: owner only
        os.replace(self.partial, self.final)
        manifest = Manifest(
            id=self.id,
            store=self.store,
            backend=self.backend,
            kind=self.kind,
            file=self.final.name,
            sha256=_sha256(self.final),
            size_bytes=self.final.stat().st_size,
            schema_versions=versions,
            row_counts=counts,
            created_at=self.now.isoformat(),
            seconds=round(time.perf_counter() - self.started, 3),
            source=source,
        )
        _write_manifest(self.directory, manifest)
        return manifest

    def discard(self) -> None:
        self.partial.unlink(missing_ok=True)
        self.final.unlink(missing_ok=True)
        (self.directory / f"{self.id}.json.partial").unlink(missing_ok=True)


def create_backup(
    stores: Stores, store_name: str, kind: str = "daily", directory: Path | None = None
) -> Manifest:
    """Back up one store online into *directory* (``archive``: the candle archive);
    returns the manifest written."""
    if kind not in KINDS:
        raise ValidationError(
            f"unknown backup kind {kind!r}", hint=f"Choose one of: {', '.join(KINDS)}."
        )
    directory = directory or default_directory(stores)
    if store_name == backup_archive.ARCHIVE_STORE:
        return _create_archive_backup(stores, kind, directory)
    store = stores.get(store_name)
    engine = stores.engine(store)
    suffix = ".db.gz" if store.path is not None else ".pgdump"
    pending = _Pending.start(directory, store.name, store.backend, kind, suffix)
    partial = pending.partial
    try:
        with _writing(directory, f"backup {pending.id}"):
            if store.path is not None:
                copy = directory / f"{pending.id}.db.partial"
                try:
                    backup_sqlite.online_copy(
                        store.path,
                        copy,
                        busy_timeout_ms=stores.settings.sqlite_busy_timeout_ms,
                    )
                    problems = backup_sqlite.integrity_errors(copy)
                    if problems:
                        raise ValidationError(
                            f"the copy of store {store.name!r} fails the integrity check: "
                            f"{'; '.join(problems)}",
                            hint="Run `cryptotrading db check`; repair the live database first.",
                        )
                    versions, counts = backup_sqlite.describe(copy, store.lineages, _tables(store))
                    backup_sqlite.compress(copy, partial)
                finally:
                    for leftover in ("", "-journal", "-wal", "-shm"):
                        copy.with_name(copy.name + leftover).unlink(missing_ok=True)
            else:
                versions, counts = backup_postgres.dump(
                    engine, store.url, partial, store.lineages, _tables(store)
                )
            source = str(store.path) if store.path is not None else store.display_url
            return pending.finish(versions, counts, source)
    except BaseException:
        pending.discard()
        raise


def _create_archive_backup(stores: Stores, kind: str, directory: Path) -> Manifest:
    """The candle archive as one verified tar (:mod:`cryptotrading.ops.backup_archive`)."""
    source = backup_archive.archive_dir(stores)
    if not backup_archive.has_partitions(source):
        raise NotFoundError(
            f"there is no candle archive to back up in {source}",
            hint="`cryptotrading market archive` creates it; back up the stores instead.",
        )
    pending = _Pending.start(
        directory, backup_archive.ARCHIVE_STORE, backup_archive.BACKEND, kind, backup_archive.SUFFIX
    )
    try:
        with _writing(directory, f"backup {pending.id}"):
            counts = backup_archive.pack(source, pending.partial)
            return pending.finish({}, counts, str(source))
    except BaseException:
        pending.discard()
        raise


def create_backups(
    stores: Stores, kind: str = "daily", directory: Path | None = None, only: str | None = None
) -> list[Manifest]:
    """Back up *only* one store (or ``archive``), or every store except the replica and
    the candle archive when there is one."""
    names = [only] if only else [store.name for store in stores if not store.is_replica]
    if not only and backup_archive.has_partitions(backup_archive.archive_dir(stores)):
        names.append(backup_archive.ARCHIVE_STORE)
    return [create_backup(stores, name, kind, directory) for name in names]


def list_backups(directory: Path, store: str | None = None) -> list[Manifest]:
    """Finished backups in *directory*, newest first."""
    manifests = []
    if directory.is_dir():
        for path in directory.glob("*.json"):
            try:
                data = json.loads(path.read_text())
                manifest = Manifest(**data)
            except (OSError, ValueError, TypeError):
                continue  # not one of our manifests
            if Path(manifest.file).name != manifest.file or manifest.id != path.stem:
                continue  # names a file outside the directory: never trusted
            if store is None or manifest.store == store:
                manifests.append(manifest)
    return sorted(manifests, key=lambda m: (m.created_at, m.id), reverse=True)


def load_manifest(directory: Path, backup_id: str) -> Manifest:
    for manifest in list_backups(directory):
        if manifest.id == backup_id:
            return manifest
    raise NotFoundError(
        f"no backup {backup_id!r} in {directory}",
        hint="List the backups with `cryptotrading backup list`.",
    )


def _compare(result: Verification, manifest: Manifest, versions: Any, counts: Any) -> None:
    result.add(
        "schema_versions",
        versions == manifest.schema_versions,
        "" if versions == manifest.schema_versions else f"{versions} != {manifest.schema_versions}",
    )
    differing = {
        table: (counts.get(table), expected)
        for table, expected in manifest.row_counts.items()
        if counts.get(table) != expected
    }
    result.add(
        "row_counts",
        not differing,
        "; ".join(f"{t}: {got} rows, manifest {want}" for t, (got, want) in differing.items()),
    )


def _verify_file(directory: Path, manifest: Manifest, result: Verification) -> Path | None:
    archive = directory / manifest.file
    if not result.add("file", archive.is_file(), f"{archive} is missing"):
        return None
    digest = _sha256(archive)
    if not result.add(
        "sha256", digest == manifest.sha256, f"file has {digest[:16]}..., manifest "
        f"{manifest.sha256[:16]}... (corrupt or truncated)"
    ):  # fmt: skip
        return None
    return archive


def _verify_sqlite(manifest: Manifest, archive: Path, scratch: Path, result: Verification) -> bool:
    try:
        backup_sqlite.decompress(archive, scratch)
    except backup_sqlite.CORRUPT_STREAM_ERRORS as exc:
        return result.add("decompress", False, str(exc))
    result.add("decompress", True)
    problems = backup_sqlite.integrity_errors(scratch)
    if not result.add("integrity_check", not problems, "; ".join(problems)):
        return False
    versions, counts = backup_sqlite.describe(
        scratch, manifest.schema_versions, manifest.row_counts
    )
    _compare(result, manifest, versions, counts)
    return result.ok


def verify_backup(stores: Stores, backup_id: str, directory: Path | None = None) -> Verification:
    """Checksum, then restore into a scratch copy: integrity check and row counts."""
    directory = directory or default_directory(stores)
    manifest = load_manifest(directory, backup_id)
    result = Verification(manifest.id)
    archive = _verify_file(directory, manifest, result)
    if archive is None:
        return result
    if manifest.backend == backup_archive.BACKEND:
        with tempfile.TemporaryDirectory(dir=directory, prefix=".verify-") as scratch_dir:
            _verify_archive_tar(manifest, archive, Path(scratch_dir) / "archive", result)
        return result
    if manifest.backend == "sqlite":
        with tempfile.TemporaryDirectory(dir=directory, prefix=".verify-") as scratch_dir:
            _verify_sqlite(manifest, archive, Path(scratch_dir) / "scratch.db", result)
        return result
    store = stores.get(manifest.store)
    try:
        backup_postgres.list_contents(store.url, archive)
        result.add("pg_restore_list", True)
        with backup_postgres.scratch_restore(
            store.url, archive, manifest.schema_versions, manifest.row_counts, keep=False
        ) as (_name, versions, counts):
            result.add("pg_restore", True)
            _compare(result, manifest, versions, counts)
    except StoreError as exc:
        result.add("pg_restore", False, exc.message)
    return result


def _verify_archive_tar(
    manifest: Manifest, tar_path: Path, into: Path, result: Verification
) -> bool:
    counts, problems = backup_archive.unpack(tar_path, into)
    result.add("partitions", not problems, "; ".join(problems[:3]))
    _compare(result, manifest, {}, counts)
    extra = sorted(set(counts) - set(manifest.row_counts))
    result.add("no_extra_partitions", not extra, ", ".join(extra[:3]))
    return result.ok


def _restore_archive(stores: Stores, directory: Path, manifest: Manifest) -> Restored:
    """Verify the tar into a staged directory beside the live archive, then swap it in;
    the old archive is kept aside as ``archive.pre-restore-<time>``."""
    result = Verification(manifest.id)
    tar_path = _verify_file(directory, manifest, result)
    if tar_path is None:
        raise _refuse(manifest, result)
    live = backup_archive.archive_dir(stores)
    stamp = _stamp(datetime.now(UTC))
    staged = live.with_name(f"{live.name}.restore-{stamp}.partial")
    try:
        if not _verify_archive_tar(manifest, tar_path, staged, result):
            raise _refuse(manifest, result)
        aside = live.with_name(f"{live.name}.pre-restore-{stamp}")
        existed = live.exists()
        if existed:
            os.replace(live, aside)
        os.replace(staged, live)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return Restored(manifest.id, manifest.store, str(aside) if existed else "", result)


def _refuse(manifest: Manifest, result: Verification) -> ValidationError:
    return ValidationError(
        f"backup {manifest.id} failed verification, nothing was restored: {result.failures()}",
        hint="Choose another backup (`cryptotrading backup list`); the live database is untouched.",
    )


def restore_backup(stores: Stores, backup_id: str, directory: Path | None = None) -> Restored:
    """Verify backup *backup_id*, then make it the live database of its store.

    The old database is kept aside (SQLite: ``<file>.pre-restore-<time>``;
    PostgreSQL: database ``<name>_pre_restore_<time>``), never overwritten.
    """
    directory = directory or default_directory(stores)
    manifest = load_manifest(directory, backup_id)
    if manifest.backend == backup_archive.BACKEND:
        return _restore_archive(stores, directory, manifest)
    store = stores.get(manifest.store)
    if store.backend != manifest.backend:
        raise ValidationError(
            f"backup {manifest.id} is a {manifest.backend} backup but store {store.name!r} "
            f"is on {store.backend}",
            hint="Restore it into a store of the same backend.",
        )
    result = Verification(manifest.id)
    archive = _verify_file(directory, manifest, result)
    if archive is None:
        raise _refuse(manifest, result)
    stamp = _stamp(datetime.now(UTC))
    if store.path is not None:
        live = store.path
        staged = live.with_name(f"{live.name}.restore-{stamp}.partial")
        try:
            if not _verify_sqlite(manifest, archive, staged, result):
                raise _refuse(manifest, result)
            stores.close()
            aside = live.with_name(f"{live.name}.pre-restore-{stamp}")
            existed = live.exists()
            backup_sqlite.swap_in(staged, live, aside)
        finally:
            staged.unlink(missing_ok=True)
        return Restored(manifest.id, store.name, str(aside) if existed else "", result)
    try:
        backup_postgres.list_contents(store.url, archive)
        result.add("pg_restore_list", True)
        with backup_postgres.scratch_restore(
            store.url, archive, manifest.schema_versions, manifest.row_counts, keep=True
        ) as (scratch, versions, counts):
            result.add("pg_restore", True)
            _compare(result, manifest, versions, counts)
            if not result.ok:
                raise _refuse(manifest, result)
    except StoreError as exc:
        result.add("pg_restore", False, exc.message)
        raise _refuse(manifest, result) from None
    stores.close()
    live_name = str(make_url(normalize_url(store.url)).database)
    aside_db = f"{live_name[:34]}_pre_restore_{stamp[:15].lower()}"
    kept = backup_postgres.swap_databases(store.url, scratch, aside_db)
    return Restored(manifest.id, store.name, aside_db if kept else "", result)


def prune_backups(
    directory: Path,
    keep_daily: int = DEFAULT_KEEP_DAILY,
    keep_weekly: int = DEFAULT_KEEP_WEEKLY,
    *,
    dry_run: bool = False,
) -> list[Manifest]:
    """Delete all but the newest *keep_daily* daily and *keep_weekly* weekly backups
    of every store; returns the backups removed (or that would be, with *dry_run*)."""
    if keep_daily < 0 or keep_weekly < 0:
        raise ValidationError(
            "the number of backups to keep cannot be negative",
            hint="Pass --keep-daily / --keep-weekly of 0 or more.",
        )
    keep = {"daily": keep_daily, "weekly": keep_weekly}
    seen: dict[tuple[str, str], int] = {}
    removed = []
    for manifest in list_backups(directory):
        slot = (manifest.store, manifest.kind)
        seen[slot] = seen.get(slot, 0) + 1
        if seen[slot] <= keep.get(manifest.kind, 0):
            continue
        removed.append(manifest)
        if not dry_run:
            # Manifest first: a half-pruned backup is never listed as usable.
            (directory / f"{manifest.id}.json").unlink(missing_ok=True)
            (directory / manifest.file).unlink(missing_ok=True)
    if not dry_run:
        remove_leftovers(directory)
    return removed


def remove_leftovers(
    directory: Path, older_than_seconds: float = STALE_AFTER_SECONDS
) -> list[Path]:
    """Delete what killed backups and verifications left behind (``*.partial`` files,
    ``.verify-*`` scratch dirs, data files whose manifest was never written) once
    older than *older_than_seconds*, so a backup still running is never disturbed."""
    if not directory.is_dir():
        return []
    cutoff = time.time() - older_than_seconds
    removed = []
    orphans = [
        path
        for pattern in ("*.db.gz", "*.pgdump", f"*{backup_archive.SUFFIX}")
        for path in directory.glob(pattern)
        if not path.with_name(path.name.split(".", 1)[0] + ".json").exists()
    ]
    for path in [*directory.glob("*.partial*"), *directory.glob(".verify-*"), *orphans]:
        try:
            if path.lstat().st_mtime >= cutoff:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except FileNotFoundError:
            continue
    return removed
