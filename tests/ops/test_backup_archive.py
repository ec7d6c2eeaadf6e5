"""The candle archive in operations: backups (archived candles survive the loss of the
archive) and the health report."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.market import MarketStore
from cryptotrading.market.archive import archive_time_series, verify_archive
from cryptotrading.ops import backup, health
from cryptotrading.stores import Stores
from tests.helpers import invoke, invoke_json

NOW = datetime(2021, 7, 18, tzinfo=UTC)


def _archived_market(stores: Stores, market_data_dir: Path) -> tuple[MarketStore, int]:
    """XRP/USDT 1h with everything older than 60 days in the archive."""
    rows = json.loads(
        (market_data_dir / "binance_nfi_2020-12_2021-07" / "XRP_USDT-1h.json").read_text()
    )
    market = MarketStore(stores)
    market.write_ohlcv(rows, symbol="XRP/USDT", timeframe="1h", exchange="binance")
    report = archive_time_series(market.engine, market.archive_dir, timedelta(days=60), now=NOW)
    assert 0 < report.rows < len(rows)
    return market, len(rows)


def test_archive_backup_restores_a_lost_archive(
    stores: Stores, backup_dir: Path, market_data_dir: Path
) -> None:
    market, total = _archived_market(stores, market_data_dir)
    before = market.read_ohlcv("XRP/USDT", "1h")
    manifests = backup.create_backups(stores, "weekly", backup_dir)
    assert {m.store for m in manifests} == {"app", "market", "archive"}
    (archived,) = [m for m in manifests if m.store == "archive"]
    assert archived.backend == "parquet" and archived.file.endswith(".tar")
    assert len(archived.row_counts) == 6
    assert sum(archived.row_counts.values()) == sum(s.archived for s in market.series())
    assert backup.verify_backup(stores, archived.id, backup_dir).ok

    shutil.rmtree(market.archive_dir)  # the disk holding the archive is gone
    assert len(market.read_ohlcv("XRP/USDT", "1h")) < total
    restored = backup.restore_backup(stores, archived.id, backup_dir)
    assert restored.store == "archive" and restored.kept_aside == ""
    after = market.read_ohlcv("XRP/USDT", "1h")
    assert len(after) == total and after.equals(before)
    assert all(entry["ok"] for entry in verify_archive(market.archive_dir))

    again = backup.restore_backup(stores, archived.id, backup_dir)  # over a live archive
    assert Path(again.kept_aside).name.startswith("archive.pre-restore-")
    assert Path(again.kept_aside).is_dir()
    assert market.read_ohlcv("XRP/USDT", "1h").equals(before)


def test_a_damaged_archive_backup_is_refused_and_the_live_archive_untouched(
    stores: Stores, backup_dir: Path, market_data_dir: Path
) -> None:
    market, _ = _archived_market(stores, market_data_dir)
    manifest = backup.create_backup(stores, "archive", "daily", backup_dir)
    tar = backup_dir / manifest.file
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tar.write_bytes(bytes(data))
    verification = backup.verify_backup(stores, manifest.id, backup_dir)
    assert not verification.ok and "sha256" in verification.failures()
    live = sorted(p.name for p in market.archive_dir.rglob("*"))
    with pytest.raises(ValidationError, match="failed verification, nothing was restored"):
        backup.restore_backup(stores, manifest.id, backup_dir)
    assert sorted(p.name for p in market.archive_dir.rglob("*")) == live
    assert not list(market.archive_dir.parent.glob("archive.restore-*"))


def test_no_backup_of_a_damaged_or_missing_archive(
    stores: Stores, backup_dir: Path, market_data_dir: Path
) -> None:
    with pytest.raises(NotFoundError, match="no candle archive to back up"):
        backup.create_backup(stores, "archive", "daily", backup_dir)
    assert {m.store for m in backup.create_backups(stores, "daily", backup_dir)} == {
        "app",
        "market",
    }
    market, _ = _archived_market(stores, market_data_dir)
    (next(market.archive_dir.rglob("_manifest.json"))).unlink()
    with pytest.raises(ValidationError, match="candle archive fails verification"):
        backup.create_backup(stores, "archive", "daily", backup_dir)
    assert backup.list_backups(backup_dir, "archive") == []
    assert not list(backup_dir.glob("archive-*"))


def test_archive_backup_from_the_cli(
    stores: Stores, backup_dir: Path, market_data_dir: Path
) -> None:
    _archived_market(stores, market_data_dir)
    settings = stores.settings
    (manifest,) = invoke_json(
        settings, "backup", "create", "--store", "archive", "--dir", str(backup_dir), "--json"
    )
    listed = invoke(
        settings, "backup", "list", "--store", "archive", "--dir", str(backup_dir), "--json"
    )
    assert [m["id"] for m in json.loads(listed.stdout)] == [manifest["id"]]
    verified = invoke_json(
        settings, "backup", "verify", manifest["id"], "--dir", str(backup_dir), "--json"
    )
    assert verified["ok"]


def test_health_reports_the_archive(stores: Stores, market_data_dir: Path) -> None:
    assert health.check(stores).archive is None
    market, _ = _archived_market(stores, market_data_dir)
    archive = health.check(stores).archive
    assert archive is not None
    assert (archive["partitions"], archive["first_month"], archive["last_month"]) == (
        6,
        "2020-12",
        "2021-05",
    )
    assert archive["bytes"] == sum(p.stat().st_size for p in market.archive_dir.rglob("*.parquet"))
    shown = invoke(stores.settings, "health", "--json")
    assert json.loads(shown.stdout)["archive"] == archive
