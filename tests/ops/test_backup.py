"""Backups: create, list, verify, restore and prune on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.migrations import head
from cryptotrading.ops import backup
from cryptotrading.stores import Stores
from tests.helpers import count_rows
from tests.ops.helpers import drop_pg, fill, insert_candles


def test_create_writes_manifest_with_checksum_counts_and_versions(
    stores: Stores, backup_dir: Path
) -> None:
    fill(stores)
    manifests = backup.create_backups(stores, "daily", backup_dir)
    assert {m.store for m in manifests} == {"app", "market"}
    market = next(m for m in manifests if m.store == "market")
    assert market.row_counts["time_series"] == 500
    assert market.schema_versions == {"market": head("market")}
    app = next(m for m in manifests if m.store == "app")
    assert app.row_counts["system_metrics"] == 25
    assert app.schema_versions == {"app": head("app")}
    for manifest in manifests:
        data = json.loads((backup_dir / f"{manifest.id}.json").read_text())
        assert data["sha256"] == manifest.sha256 and len(manifest.sha256) == 64
        assert (backup_dir / manifest.file).stat().st_size == manifest.size_bytes
        assert backup.verify_backup(stores, manifest.id, backup_dir).ok
    assert [m.id for m in backup.list_backups(backup_dir, "market")] == [market.id]
    assert not list(backup_dir.glob("*.partial"))


def test_restore_brings_back_the_backed_up_rows_and_keeps_the_old_aside(
    stores: Stores, backup_dir: Path
) -> None:
    fill(stores)
    manifest = backup.create_backup(stores, "market", "daily", backup_dir)
    insert_candles(stores.engine("market"), 500, 100)
    assert count_rows(stores.engine("market"), "time_series") == 600

    restored = backup.restore_backup(stores, manifest.id, backup_dir)

    assert restored.verification.ok
    assert count_rows(stores.engine("market"), "time_series") == 500
    if stores.market.path is not None:
        aside = Path(restored.kept_aside)
        assert aside.name.startswith("real_market_data.db.pre-restore-")
        import sqlite3

        with sqlite3.connect(aside) as old:
            assert old.execute("SELECT count(*) FROM time_series").fetchone()[0] == 600
    else:
        from sqlalchemy.engine import make_url

        from cryptotrading.db.engine import create_store_engine

        old_url = make_url(stores.market.url).set(database=restored.kept_aside)
        old = create_store_engine(old_url.render_as_string(hide_password=False))
        try:
            assert count_rows(old, "time_series") == 600
        finally:
            old.dispose()
            drop_pg(stores.market.url, restored.kept_aside)


def _live_fingerprint(stores: Stores) -> tuple[int, bytes | None]:
    rows = count_rows(stores.engine("market"), "time_series")
    path = stores.market.path
    return rows, path.read_bytes() if path is not None else None


@pytest.mark.parametrize("damage", ["flip", "truncate", "zero_tail"])
def test_corrupt_or_truncated_backup_is_refused_and_live_untouched(
    stores: Stores, backup_dir: Path, damage: str
) -> None:
    fill(stores)
    manifest = backup.create_backup(stores, "market", "daily", backup_dir)
    insert_candles(stores.engine("market"), 500, 7)
    archive = backup_dir / manifest.file
    data = bytearray(archive.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-64:] = bytes(64)
    archive.write_bytes(bytes(data))
    stores.close()
    before = _live_fingerprint(stores)
    stores.close()

    verification = backup.verify_backup(stores, manifest.id, backup_dir)
    assert not verification.ok
    assert any(c.name == "sha256" and not c.ok for c in verification.checks)
    with pytest.raises(ValidationError, match="failed verification, nothing was restored"):
        backup.restore_backup(stores, manifest.id, backup_dir)

    stores.close()
    assert _live_fingerprint(stores) == before
    assert before[0] == 507
    if stores.market.path is not None:
        assert not list(stores.market.path.parent.glob("*.pre-restore-*"))
        assert not list(stores.market.path.parent.glob("*.partial"))


def test_damaged_content_with_a_re_signed_manifest_is_refused(
    stores: Stores, backup_dir: Path
) -> None:
    """Even when the checksum matches (manifest re-signed after damage), the restore
    into a scratch copy catches the damage: integrity check / pg_restore failure."""
    fill(stores)
    manifest = backup.create_backup(stores, "market", "daily", backup_dir)
    archive = backup_dir / manifest.file
    if manifest.backend == "sqlite":
        raw = bytearray(gzip.decompress(archive.read_bytes()))
        page = int.from_bytes(raw[16:18], "big")
        for start in range(page, len(raw) - page, 2 * page):  # every other page after the 1st
            raw[start : start + 64] = b"\xab" * 64
        archive.write_bytes(gzip.compress(bytes(raw)))
    else:
        data = archive.read_bytes()
        archive.write_bytes(data[: len(data) * 6 // 10])  # the TOC survives, the data not
    # Re-signed with the key (as if the data was damaged before it was checksummed).
    from dataclasses import replace

    from cryptotrading.ops import backup_signing

    fixed = replace(manifest, sha256=backup._sha256(archive))
    key = backup_signing.load_key(stores.settings)
    fixed = replace(fixed, signature=backup_signing.sign(key, fixed.signed_fields()))
    (backup_dir / f"{manifest.id}.json").write_text(json.dumps(fixed.as_dict()))
    stores.close()
    before = _live_fingerprint(stores)
    stores.close()
    result = backup.verify_backup(stores, manifest.id, backup_dir)
    assert not result.ok
    assert next(c for c in result.checks if c.name == "sha256").ok
    assert any(
        c.name in ("integrity_check", "row_counts", "pg_restore") and not c.ok
        for c in result.checks
    ), result.checks
    with pytest.raises(ValidationError):
        backup.restore_backup(stores, manifest.id, backup_dir)
    stores.close()
    assert _live_fingerprint(stores) == before


def test_prune_keeps_newest_daily_and_weekly(stores: Stores, backup_dir: Path) -> None:
    daily = [backup.create_backup(stores, "app", "daily", backup_dir) for _ in range(4)]
    weekly = [backup.create_backup(stores, "app", "weekly", backup_dir) for _ in range(3)]
    removed = backup.prune_backups(backup_dir, keep_daily=2, keep_weekly=1)
    assert {m.id for m in removed} == {m.id for m in daily[:2] + weekly[:2]}
    left = {m.id for m in backup.list_backups(backup_dir)}
    assert left == {m.id for m in daily[2:] + weekly[2:]}
    for manifest in removed:
        assert not (backup_dir / manifest.file).exists()
    with pytest.raises(ValidationError):
        backup.prune_backups(backup_dir, keep_daily=-1)


def test_bad_input_is_refused(stores: Stores, backup_dir: Path) -> None:
    with pytest.raises(ValidationError, match="unknown backup kind"):
        backup.create_backup(stores, "app", "hourly", backup_dir)
    with pytest.raises(NotFoundError):
        backup.create_backup(stores, "nope", "daily", backup_dir)
    with pytest.raises(NotFoundError, match="no backup"):
        backup.verify_backup(stores, "app-daily-missing", backup_dir)
    assert not backup_dir.exists() or not list(backup_dir.iterdir())


def test_restore_after_the_live_database_is_lost(stores: Stores, backup_dir: Path) -> None:
    fill(stores)
    manifest = backup.create_backup(stores, "market", "daily", backup_dir)
    stores.close()
    market = stores.market
    if market.path is not None:
        for suffix in ("", "-wal", "-shm"):
            market.path.with_name(market.path.name + suffix).unlink(missing_ok=True)
    else:
        from sqlalchemy.engine import make_url

        drop_pg(market.url, str(make_url(market.url).database))
    restored = backup.restore_backup(stores, manifest.id, backup_dir)
    assert restored.kept_aside == ""
    assert count_rows(stores.engine("market"), "time_series") == 500
    if market.path is not None:
        assert market.path.stat().st_mode & 0o777 == 0o600


def test_prune_dry_run_and_foreign_files(stores: Stores, backup_dir: Path) -> None:
    made = [backup.create_backup(stores, "app", "daily", backup_dir) for _ in range(3)]
    (backup_dir / "notes.json").write_text('{"not": "a manifest"}')
    (backup_dir / "broken.json").write_text("{")
    assert [m.id for m in backup.list_backups(backup_dir)] == [m.id for m in reversed(made)]
    would = backup.prune_backups(backup_dir, keep_daily=1, dry_run=True)
    assert {m.id for m in would} == {made[0].id, made[1].id}
    assert len(backup.list_backups(backup_dir)) == 3
    assert all((backup_dir / m.file).stat().st_mode & 0o777 == 0o600 for m in made)


def test_a_manifest_naming_a_file_outside_the_directory_is_ignored(
    stores: Stores, backup_dir: Path, tmp_path: Path
) -> None:
    manifest = backup.create_backup(stores, "app", "daily", backup_dir)
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    forged = {**manifest.as_dict(), "id": "app-daily-forged", "file": "../precious.txt"}
    (backup_dir / "app-daily-forged.json").write_text(json.dumps(forged))
    assert [m.id for m in backup.list_backups(backup_dir)] == [manifest.id]
    backup.prune_backups(backup_dir, keep_daily=0)
    assert victim.read_text() == "keep me"
    assert backup.list_backups(backup_dir) == []


def test_leftovers_of_killed_backups_are_removed(stores: Stores, backup_dir: Path) -> None:
    kept = backup.create_backup(stores, "app", "daily", backup_dir)
    orphan = backup.create_backup(stores, "app", "daily", backup_dir)
    (backup_dir / f"{orphan.id}.json").unlink()  # killed between data file and manifest
    (backup_dir / "app-daily-x.db.gz.partial").write_bytes(b"half")
    (backup_dir / ".verify-abc").mkdir()
    assert backup.remove_leftovers(backup_dir, older_than_seconds=3600) == []  # too fresh
    removed = {p.name for p in backup.remove_leftovers(backup_dir)}
    assert removed == {orphan.file, "app-daily-x.db.gz.partial", ".verify-abc"}
    assert {p.name for p in backup_dir.iterdir()} == {kept.file, f"{kept.id}.json"}
