"""Verified, compressed, signed backups with a manifest, rotation and an atomic restore.

A backup of one store is two files in the backup directory (default
``<data_dir>/backups``): the data (``<id>.db.gz`` -- a gzipped SQLite online copy --
or ``<id>.pgdump`` -- ``pg_dump -Fc``) and ``<id>.json``, the manifest (sha256,
size, schema versions, row counts, time), signed with the backup key
(:mod:`cryptotrading.ops.backup_signing`). The manifest is written last: a backup
without one never finished and is ignored. ``verify`` authenticates the manifest,
checks the checksum and restores into a scratch copy that must pass the integrity
check, be a database of the store's schema lineage
(:mod:`cryptotrading.ops.backup_lineage`) and match the manifest's row counts;
``restore`` does the same, refuses while another process uses the store, then swaps
the verified copy in, keeping the old database aside. The candle archive (Parquet
files outside the databases) is backed up the same way as the pseudo-store
``archive`` (:mod:`cryptotrading.ops.backup_archive`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from cryptotrading import migrations
from cryptotrading.common.clock import epoch_ms
from cryptotrading.db.engine import normalize_url
from cryptotrading.errors import (
    ConfigurationError,
    CryptotradingError,
    NotFoundError,
    StoreError,
    ValidationError,
)
from cryptotrading.models import APP_LINEAGE, lineage_tables
from cryptotrading.ops import (
    backup_archive,
    backup_files,
    backup_lineage,
    backup_manifest,
    backup_postgres,
    backup_signing,
    backup_sqlite,
    changelog_archive,
)
from cryptotrading.ops.backup_files import remove_leftovers
from cryptotrading.ops.backup_manifest import KINDS, MANIFEST_FORMAT, Manifest
from cryptotrading.settings import Settings
from cryptotrading.stores import Store, Stores

__all__ = [
    "KINDS",
    "MANIFEST_FORMAT",
    "Manifest",
    "create_backup",
    "create_backups",
    "describe_backups",
    "list_backups",
    "load_manifest",
    "prune_backups",
    "remove_leftovers",
    "restore_backup",
    "verify_backup",
]

DEFAULT_KEEP_DAILY = 7
DEFAULT_KEEP_WEEKLY = 4


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
    forced: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "store": self.store,
            "kept_aside": self.kept_aside,
            "forced": self.forced,
            "verification": self.verification.as_dict(),
        }


def default_directory(stores: Stores) -> Path:
    return stores.settings.data_dir / "backups"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S%fZ")


def _tables(lineages: tuple[str, ...]) -> list[str]:
    return [table.name for lineage in lineages for table in lineage_tables(lineage)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _signing_key(settings: Settings, directory: Path) -> backup_signing.BackupKey:
    """The key that signs new manifests (created if missing), never in *directory*."""
    backup_signing.ensure_key(settings)
    backup_signing.check_outside(settings, directory)
    return backup_signing.load_key(settings)


@dataclass(frozen=True)
class _Pending:
    """A backup being written: its id, its data file's final and partial paths."""

    directory: Path
    key: backup_signing.BackupKey
    id: str
    store: str
    backend: str
    kind: str
    now: datetime
    started: float
    final: Path
    partial: Path

    @classmethod
    def start(
        cls, settings: Settings, directory: Path, store: str, backend: str, kind: str
    ) -> _Pending:
        """Prepare the directory, remove what killed backups left there, and create
        the (owner-only) partial data file. Call inside ``backup_files.in_use``."""
        key = _signing_key(settings, directory)
        now = datetime.now(UTC)
        backup_id = f"{store}-{kind}-{_stamp(now)}"
        suffix = backup_manifest.SUFFIXES[backend]
        final = directory / f"{backup_id}{suffix}"
        partial = directory / f"{backup_id}{suffix}.partial"
        pending = cls(
            directory,
            key,
            backup_id,
            store,
            backend,
            kind,
            now,
            time.perf_counter(),
            final,
            partial,
        )
        with backup_files.writing(directory, f"backup {backup_id}"):
            backup_sqlite.create_private(partial)
        return pending

    def finish(
        self, versions: dict[str, str | None], counts: dict[str, int], source: str
    ) -> Manifest:
        """Move the finished data file into place, then write its manifest (last)."""
        os.replace(self.partial, self.final)
        unsigned = Manifest(
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
        signature = backup_signing.sign(self.key, unsigned.signed_fields())
        manifest = dataclasses.replace(unsigned, signature=signature)
        backup_manifest.write(self.directory, manifest)
        return manifest

    def discard(self) -> None:
        self.partial.unlink(missing_ok=True)
        self.final.unlink(missing_ok=True)
        (self.directory / f"{self.id}.json.partial").unlink(missing_ok=True)


def _begin(directory: Path) -> None:
    """Create the backup directory and remove what killed backups left in it."""
    backup_files.prepare(directory)
    backup_files.remove_leftovers(directory)


def create_backup(
    stores: Stores, store_name: str, kind: str = "daily", directory: Path | None = None
) -> Manifest:
    """Back up one store online into *directory* (``archive``: the candle archive);
    returns the signed manifest written. Leftovers of killed backups are removed first."""
    if kind not in KINDS:
        raise ValidationError(
            f"unknown backup kind {kind!r}", hint=f"Choose one of: {', '.join(KINDS)}."
        )
    directory = directory or default_directory(stores)
    if store_name == backup_archive.ARCHIVE_STORE:
        return _create_archive_backup(stores, kind, directory)
    store = stores.get(store_name)
    engine = stores.engine(store)
    _begin(directory)
    with backup_files.in_use(directory):
        pending = _Pending.start(stores.settings, directory, store.name, store.backend, kind)
        try:
            with backup_files.writing(directory, f"backup {pending.id}"):
                if store.path is not None:
                    versions, counts = _copy_sqlite(stores, store.path, store.lineages, pending)
                else:
                    versions, counts = backup_postgres.dump(
                        engine, store.url, pending.partial, store.lineages, _tables(store.lineages)
                    )
                source = str(store.path) if store.path is not None else store.display_url
                return pending.finish(versions, counts, source)
        except BaseException:
            pending.discard()
            raise


def _copy_sqlite(
    stores: Stores, path: Path, lineages: tuple[str, ...], pending: _Pending
) -> tuple[dict[str, str | None], dict[str, int]]:
    """Online copy, integrity check, versions and counts, gzip into the partial file."""
    copy = pending.directory / f"{pending.id}.db.partial"
    try:
        backup_sqlite.online_copy(
            path, copy, busy_timeout_ms=stores.settings.sqlite_busy_timeout_ms
        )
        problems = backup_sqlite.integrity_errors(copy)
        if problems:
            raise ValidationError(
                f"the copy of store {pending.store!r} fails the integrity check: "
                f"{'; '.join(problems)}",
                hint="Run `cryptotrading db check`; repair the live database first.",
            )
        versions, counts = backup_sqlite.describe(copy, lineages, _tables(lineages))
        backup_sqlite.compress(copy, pending.partial)
        return versions, counts
    finally:
        for leftover in ("", "-journal", "-wal", "-shm"):
            copy.with_name(copy.name + leftover).unlink(missing_ok=True)


def _create_archive_backup(stores: Stores, kind: str, directory: Path) -> Manifest:
    """The candle archive as one verified tar (:mod:`cryptotrading.ops.backup_archive`)."""
    source = backup_archive.archive_dir(stores)
    if not backup_archive.has_partitions(source):
        raise NotFoundError(
            f"there is no candle archive to back up in {source}",
            hint="`cryptotrading market archive` creates it; back up the stores instead.",
        )
    _begin(directory)
    with backup_files.in_use(directory):
        pending = _Pending.start(
            stores.settings, directory, backup_archive.ARCHIVE_STORE, backup_archive.BACKEND, kind
        )
        try:
            with backup_files.writing(directory, f"backup {pending.id}"):
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
    made = [create_backup(stores, name, kind, directory) for name in names]
    archive_change_log(stores, directory or default_directory(stores))
    return made


def archive_change_log(stores: Stores, directory: Path) -> None:
    """Archive the application store's change log beside its backups (point-in-time
    recovery of a SQLite store replays it), then trim what every reader has."""
    app = stores.primary_for(APP_LINEAGE)
    if app.path is not None and migrations.current(stores.engine(app), APP_LINEAGE) == (
        migrations.head(APP_LINEAGE)
    ):
        changelog_archive.archive_log(stores, directory, app.name)
        changelog_archive.trim_logs(stores, directory)


def list_backups(directory: Path, store: str | None = None) -> list[Manifest]:
    """Finished backups in *directory*, newest first (invalid manifests skipped)."""
    return backup_manifest.list_all(directory, store)


def load_manifest(directory: Path, backup_id: str) -> Manifest:
    """The manifest of *backup_id*: NotFoundError if absent, ValidationError if it is
    not a valid manifest (edited, damaged, hostile)."""
    return backup_manifest.load(directory, backup_id)


def authenticity(manifest: Manifest, key: backup_signing.BackupKey | str) -> str:
    """``valid``, ``altered``, ``other key``, ``unsigned``, or (*key* is the reason it
    could not be loaded) ``key missing`` / ``key unreadable``."""
    if not manifest.signed:
        return "unsigned"
    if isinstance(key, str):
        return key
    return backup_signing.check(key, manifest.signed_fields(), manifest.signature)[0]


def _key_or_reason(settings: Settings) -> backup_signing.BackupKey | str:
    try:
        return backup_signing.load_key(settings)
    except NotFoundError:
        return "key missing"
    except ConfigurationError:
        return "key unreadable"


def describe_backups(
    settings: Settings, directory: Path, store: str | None = None
) -> list[tuple[Manifest, str]]:
    """Finished backups, newest first, each with its :func:`authenticity`."""
    key = _key_or_reason(settings)
    return [(m, authenticity(m, key)) for m in list_backups(directory, store)]


def _authenticate(
    settings: Settings, manifest: Manifest, result: Verification, *, allow_unsigned: bool
) -> tuple[CryptotradingError | None, bool]:
    """Add the ``signature`` check; returns the error a restore raises (None: go on)
    and whether the content must not even be looked at (an altered manifest)."""
    if not manifest.signed:
        accepted = result.add(
            "signature",
            allow_unsigned,
            "unsigned (made before manifests were signed)"
            + ("; accepted with --allow-unsigned" if allow_unsigned else ""),
        )
        return None if accepted else _unsigned(manifest), False
    try:
        key = backup_signing.load_key(settings)
    except NotFoundError as exc:
        accepted = result.add(
            "signature",
            allow_unsigned,
            exc.message + ("; accepted with --allow-unsigned" if allow_unsigned else ""),
        )
        return None if accepted else exc, False
    except ConfigurationError as exc:
        result.add("signature", False, exc.message)
        return exc, True
    outcome, problem = backup_signing.check(key, manifest.signed_fields(), manifest.signature)
    if outcome == backup_signing.OTHER_KEY:  # cannot be authenticated, as if unsigned
        accepted = result.add(
            "signature",
            allow_unsigned,
            problem + ("; accepted with --allow-unsigned" if allow_unsigned else ""),
        )
        return None if accepted else ValidationError(
            f"backup {manifest.id} cannot be authenticated, nothing was restored: {problem}",
            hint=f"Point {backup_signing.KEY_FILE_ENV} at the key the backup was made with, "
            "or restore with --allow-unsigned (the content is still checked).",
        ), False
    if result.add("signature", not problem, problem):
        return None, False
    return ValidationError(
        f"backup {manifest.id} does not authenticate, nothing was restored: {problem}",
        hint="Its manifest was edited: choose another backup (`cryptotrading backup list`).",
    ), True


def _unsigned(manifest: Manifest) -> ValidationError:
    return ValidationError(
        f"backup {manifest.id} is unsigned (made before backup manifests were signed), "
        "nothing was restored",
        hint="Restore it with --allow-unsigned: its content is still checked (checksum, "
        "integrity, the store's schema lineage and the row counts) before the swap.",
    )


def _compare(
    result: Verification,
    manifest: Manifest,
    versions: dict[str, str | None],
    counts: dict[str, int],
) -> None:
    result.add(
        "schema_versions",
        versions == manifest.schema_versions,
        "" if versions == manifest.schema_versions else f"{versions} != {manifest.schema_versions}",
    )
    differing = {
        table: (counts.get(table), manifest.row_counts.get(table))
        for table in sorted({*manifest.row_counts, *counts})
        if counts.get(table) != manifest.row_counts.get(table)
    }
    result.add(
        "row_counts",
        not differing,
        "; ".join(
            f"{t}: {got} rows, manifest {want}" for t, (got, want) in list(differing.items())[:5]
        ),
    )


def _check_contents(
    result: Verification,
    manifest: Manifest,
    lineages: tuple[str, ...],
    contents: backup_lineage.Contents,
) -> bool:
    """The lineage check, then versions and row counts against the manifest."""
    problems = backup_lineage.problems(contents, lineages)
    result.add(
        "lineage",
        not problems,
        f"not a database of store {manifest.store!r} ({', '.join(lineages)}): "
        + "; ".join(problems),
    )
    versions = {lineage: contents.versions.get(lineage) for lineage in lineages}
    _compare(result, manifest, versions, contents.counts)
    return result.ok


def _lineages(manifest: Manifest, result: Verification) -> tuple[str, ...] | None:
    lineages = backup_lineage.store_lineages(manifest.store)
    if lineages is None:
        result.add("lineage", False, f"{manifest.store!r} is not a store of any layout")
    return lineages


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


def _verify_sqlite(
    manifest: Manifest,
    lineages: tuple[str, ...],
    archive: Path,
    scratch: Path,
    result: Verification,
) -> bool:
    try:
        backup_sqlite.decompress(archive, scratch)
    except backup_sqlite.CORRUPT_STREAM_ERRORS as exc:
        return result.add("decompress", False, str(exc))
    result.add("decompress", True)
    problems = backup_sqlite.integrity_errors(scratch)
    if not result.add("integrity_check", not problems, "; ".join(problems)):
        return False
    contents = backup_sqlite.contents(scratch, _tables(lineages))
    return _check_contents(result, manifest, lineages, contents)


def verify_backup(
    stores: Stores,
    backup_id: str,
    directory: Path | None = None,
    *,
    allow_unsigned: bool = False,
) -> Verification:
    """Authenticate the manifest, checksum, then restore into a scratch copy:
    integrity check, the store's schema lineage, versions and row counts.

    An unsigned manifest (or one whose key is missing) fails the ``signature`` check
    unless *allow_unsigned*; the content is checked all the same. An altered manifest
    stops the verification before its file is opened.
    """
    directory = directory or default_directory(stores)
    manifest = load_manifest(directory, backup_id)
    result = Verification(manifest.id)
    _error, altered = _authenticate(
        stores.settings, manifest, result, allow_unsigned=allow_unsigned
    )
    if altered:
        return result
    with backup_files.in_use(directory):
        archive = _verify_file(directory, manifest, result)
        if archive is None:
            return result
        if manifest.backend == backup_archive.BACKEND:
            with tempfile.TemporaryDirectory(dir=directory, prefix=".verify-") as scratch_dir:
                _verify_archive_tar(manifest, archive, Path(scratch_dir) / "archive", result)
            return result
        lineages = _lineages(manifest, result)
        if lineages is None:
            return result
        if manifest.backend == "sqlite":
            with tempfile.TemporaryDirectory(dir=directory, prefix=".verify-") as scratch_dir:
                _verify_sqlite(
                    manifest, lineages, archive, Path(scratch_dir) / "scratch.db", result
                )
            return result
        store = stores.get(manifest.store)
        try:
            backup_postgres.list_contents(store.url, archive)
            result.add("pg_restore_list", True)
            with backup_postgres.scratch_restore(
                store.url, archive, _tables(lineages), keep=False
            ) as (_name, contents):
                result.add("pg_restore", True)
                _check_contents(result, manifest, lineages, contents)
        except StoreError as exc:
            result.add("pg_restore", False, exc.message)
        return result


def _verify_archive_tar(
    manifest: Manifest, tar_path: Path, into: Path, result: Verification
) -> bool:
    counts, problems = backup_archive.unpack(tar_path, into)
    result.add("partitions", not problems, "; ".join(problems[:3]))
    _compare(result, manifest, {}, counts)
    return result.ok


def _restore_archive(
    stores: Stores, directory: Path, manifest: Manifest, result: Verification
) -> Restored:
    """Verify the tar into a staged directory beside the live archive, then swap it in;
    the old archive is kept aside as ``archive.pre-restore-<time>``."""
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


def restore_backup(
    stores: Stores,
    backup_id: str,
    directory: Path | None = None,
    *,
    allow_unsigned: bool = False,
    force: bool = False,
) -> Restored:
    """Verify backup *backup_id* (as :func:`verify_backup`), then make it the live
    database of its store.

    Refused before anything is swapped when the manifest does not authenticate
    (unsigned: only with *allow_unsigned*), the content is not a database of the
    store's lineage, or -- unless *force* -- another process uses the store. The
    old database is kept aside (SQLite: ``<file>.pre-restore-<time>``; PostgreSQL:
    database ``<name>_pre_restore_<time>``), never overwritten.
    """
    directory = directory or default_directory(stores)
    manifest = load_manifest(directory, backup_id)
    result = Verification(manifest.id)
    error, _altered = _authenticate(
        stores.settings, manifest, result, allow_unsigned=allow_unsigned
    )
    if error is not None:
        raise error
    with backup_files.in_use(directory):
        if manifest.backend == backup_archive.BACKEND:
            return _restore_archive(stores, directory, manifest, result)
        store = stores.get(manifest.store)
        if store.backend != manifest.backend:
            raise ValidationError(
                f"backup {manifest.id} is a {manifest.backend} backup but store {store.name!r} "
                f"is on {store.backend}",
                hint="Restore it into a store of the same backend.",
            )
        archive = _verify_file(directory, manifest, result)
        if archive is None:
            raise _refuse(manifest, result)
        logged = _archive_before_restore(stores, store, directory)
        stores.close()  # our own connections must not count as another user
        if store.path is not None:
            backup_files.remove_restore_leftovers(store.path)
            with backup_files.in_use(store.path.parent):
                kept = _restore_sqlite(store.path, store.lineages, manifest, archive, result, force)
            if logged:  # the history after the backup is abandoned; the log goes on from it
                changelog_archive.after_restore(
                    backup_signing.load_key(stores.settings), directory, store.name, store.path
                )
        else:
            kept = _restore_postgres(store.url, store.lineages, manifest, archive, result, force)
    return Restored(manifest.id, store.name, kept, result, forced=force)


def stage_sqlite(
    stores: Stores,
    directory: Path,
    manifest: Manifest,
    staged: Path,
    *,
    allow_unsigned: bool = False,
) -> Verification:
    """Authenticate and verify SQLite backup *manifest* into the file *staged* (as a
    restore does before its swap); raises the restore's error when it fails."""
    result = Verification(manifest.id)
    error, _altered = _authenticate(
        stores.settings, manifest, result, allow_unsigned=allow_unsigned
    )
    if error is not None:
        raise error
    store = stores.get(manifest.store)
    archive = _verify_file(directory, manifest, result)
    if archive is None or not _verify_sqlite(manifest, store.lineages, archive, staged, result):
        raise _refuse(manifest, result)
    return result


def _archive_before_restore(stores: Stores, store: Store, directory: Path) -> bool:
    """A SQLite application store's change log is archived before a restore replaces
    it (point-in-time recovery can still reach those changes); True when it was."""
    if store.path is None or APP_LINEAGE not in store.lineages:
        return False
    try:
        if migrations.current(stores.engine(store), APP_LINEAGE) != migrations.head(APP_LINEAGE):
            return False
        changelog_archive.archive_log(stores, directory, store.name)
    except CryptotradingError:
        return False  # an unreadable live store: the restore replaces it all the same
    return True


def _restore_sqlite(
    live: Path,
    lineages: tuple[str, ...],
    manifest: Manifest,
    archive: Path,
    result: Verification,
    force: bool,
) -> str:
    """Verify into a staged file beside *live*, then swap; returns the file kept aside."""
    since = backup_sqlite.begin_restore(live, force=force)
    stamp = _stamp(datetime.now(UTC))
    staged = live.with_name(f"{live.name}.restore-{stamp}.partial")
    try:
        if not _verify_sqlite(manifest, lineages, archive, staged, result):
            raise _refuse(manifest, result)
        aside = live.with_name(f"{live.name}.pre-restore-{stamp}")
        existed = live.exists()
        backup_sqlite.swap_in(staged, live, aside, since=since, force=force)
    finally:
        staged.unlink(missing_ok=True)
    return str(aside) if existed else ""


def _restore_postgres(
    url: str,
    lineages: tuple[str, ...],
    manifest: Manifest,
    archive: Path,
    result: Verification,
    force: bool,
) -> str:
    """Restore into a scratch database, verify, then rename it in; returns the name
    of the database kept aside."""
    since = backup_postgres.begin_restore(url, force=force)
    try:
        backup_postgres.list_contents(url, archive)
        result.add("pg_restore_list", True)
        with backup_postgres.scratch_restore(url, archive, _tables(lineages), keep=True) as (
            scratch,
            contents,
        ):
            result.add("pg_restore", True)
            if not _check_contents(result, manifest, lineages, contents):
                raise _refuse(manifest, result)
    except StoreError as exc:
        result.add("pg_restore", False, exc.message)
        raise _refuse(manifest, result) from None
    stamp = _stamp(datetime.now(UTC))
    live_name = str(make_url(normalize_url(url)).database)
    aside_db = f"{live_name[:34]}_pre_restore_{stamp[:15].lower()}"
    kept = backup_postgres.swap_databases(url, scratch, aside_db, force=force, since=since)
    return aside_db if kept else ""


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
        _prune_change_log(directory)
    return removed


def _prune_change_log(directory: Path) -> None:
    """Change-log segments older than each store's oldest kept backup go with it."""
    oldest: dict[str, datetime] = {}
    for manifest in list_backups(directory):
        created = datetime.fromisoformat(manifest.created_at)
        if manifest.store not in oldest or created < oldest[manifest.store]:
            oldest[manifest.store] = created
    for store, created in oldest.items():
        changelog_archive.prune_segments(directory, store, epoch_ms(created))
