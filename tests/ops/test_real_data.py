"""Operations over real Binance candles written by the market store: health lists
the monthly partitions, replication and backup carry every candle."""

from __future__ import annotations

import json
from pathlib import Path

from cryptotrading.market.store import MarketStore
from cryptotrading.ops import backup, health, replication
from cryptotrading.stores import Stores
from tests.helpers import count_rows
from tests.ops.helpers import assert_in_step


def test_real_candles_partitions_replication_and_backup(
    stores: Stores, market_data_dir: Path, backup_dir: Path
) -> None:
    rows = json.loads(
        (market_data_dir / "binance_nfi_2020-12_2021-07" / "BTC_USDT-1h.json").read_text()
    )
    MarketStore(stores).write_ohlcv(rows, symbol="BTC/USDT", timeframe="1h", exchange="binance")
    assert count_rows(stores.engine("market"), "time_series") == len(rows) == 5482

    report = health.check(stores, health.Thresholds(min_free_disk_percent=None))
    market = next(s for s in report.stores if s.name == "market")
    series = next(t for t in market.tables if t.name == "time_series")
    assert series.rows == len(rows)
    if stores.market.backend == "postgresql":
        monthly = {p.name: p.rows for p in market.partitions if p.name != "time_series_default"}
        # December 2020 .. July 2021: one partition per month that received candles.
        assert sorted(monthly) == [
            "time_series_p202012", "time_series_p202101", "time_series_p202102",
            "time_series_p202103", "time_series_p202104", "time_series_p202105",
            "time_series_p202106", "time_series_p202107",
        ]  # fmt: skip
        assert sum(monthly.values()) == len(rows)
        assert monthly["time_series_p202101"] == 31 * 24

    replication.replicate_once(stores, batch_size=1000)
    assert_in_step(stores, "time_series")

    manifest = backup.create_backup(stores, "market", "daily", backup_dir)
    assert manifest.row_counts["time_series"] == len(rows)
    assert backup.verify_backup(stores, manifest.id, backup_dir).ok
