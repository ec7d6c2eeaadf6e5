"""Gaps and the data-quality pass on the real Binance and Bittrex candles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from cryptotrading.db.session import unit_of_work
from cryptotrading.market import MarketStore
from cryptotrading.market.candles import to_candles
from cryptotrading.market.importer import import_file
from cryptotrading.market.quality import assess, count_outliers, find_gaps, quality_pass
from cryptotrading.models.quality import DataQualityMetric
from tests.helpers import invoke_json, load_rows

HOUR = 3_600_000
#: The six Binance outages of SOURCES.md: (first missing hour UTC, hours missing).
OUTAGES = [
    ("2020-12-21T15:00:00Z", 3),
    ("2020-12-25T02:00:00Z", 1),
    ("2021-02-11T04:00:00Z", 1),
    ("2021-03-06T02:00:00Z", 1),
    ("2021-04-20T02:00:00Z", 2),
    ("2021-04-25T05:00:00Z", 3),
]


def test_binance_outages_are_the_gaps(market: MarketStore, binance_dir: Path) -> None:
    rows = load_rows(binance_dir / "BTC_USDT-1h.json")
    market.write_ohlcv(rows, symbol="BTC/USDT", timeframe="1h", exchange="binance")
    found = find_gaps(market, "BTC/USDT", "1h")
    assert [(g.as_dict()["start_iso"], g.missing) for g in found] == OUTAGES
    assert all(g.end == g.start + g.missing * HOUR for g in found)
    window = find_gaps(market, "BTC/USDT", "1h", start="2021-04-01", end="2021-05-01")
    assert [g.missing for g in window] == [2, 3]


def test_gaps_of_resampled_series(market: MarketStore, binance_dir: Path) -> None:
    market.write_ohlcv(
        load_rows(binance_dir / "ETH_USDT-5m.json"), symbol="ETH/USDT", timeframe="5m"
    )
    assert [g.missing for g in find_gaps(market, "ETH/USDT", "1h")] == [m for _, m in OUTAGES]
    five = find_gaps(market, "ETH/USDT", "5m")
    assert sum(g.missing for g in five) >= 11 * 12


def test_quality_pass_writes_metrics(market: MarketStore, binance_dir: Path) -> None:
    path = binance_dir / "BTC_USDT-1h.json"
    import_file(market, path, symbol="BTC/USDT", timeframe="1h", exchange="binance")
    import_file(market, path, symbol="BTC/USDT", timeframe="1h", exchange="binance")
    last = load_rows(path)[-1][0]
    reports = quality_pass(market, now_ms=last + HOUR)
    assert len(reports) == 1
    report = reports[0]
    assert (report.source, report.symbol, report.timeframe) == ("binance", "BTC/USDT", "1h")
    assert (report.candles, report.expected, report.gaps_count, report.missing) == (
        5482,
        5493,
        6,
        11,
    )
    assert report.completeness == pytest.approx(5482 / 5493)
    assert report.duplicates_rejected == 5482
    assert report.staleness_seconds == 0.0
    assert report.scores["freshness"] == 1.0
    with unit_of_work(market.stores.engine(market.stores.app)) as session:
        rows = session.scalars(select(DataQualityMetric)).all()
        assert len(rows) == 1
        row = rows[0]
        assert row.gaps_count == 6 and row.duplicates_rejected == 5482
        assert row.completeness == pytest.approx(5482 / 5493)
        assert row.quality_scores["missing"] == 11
        assert row.period_start is not None and row.period_start.year == 2020
        assert row.overall_score == pytest.approx(report.overall_score)


def test_quality_cli_staleness_and_outliers(
    market: MarketStore, binance_dir: Path, market_data_dir: Path
) -> None:
    rows = load_rows(market_data_dir / "freqtrade_testdata" / "UNITTEST_BTC-1m.json")
    candles = to_candles(rows)
    report = assess(
        candles,
        "1m",
        source="bittrex",
        symbol="UNITTEST/BTC",
        now_ms=int(candles.timestamp[-1]) + 61 * 60_000,
    )
    assert report is not None
    assert report.candles == 13681 and report.gaps_count > 0
    assert report.missing == report.expected - report.candles
    assert report.staleness_seconds == 3600.0
    assert report.scores["freshness"] == pytest.approx(2 / 60)
    close = np.asarray(load_rows(binance_dir / "BTC_USDT-1h.json"))[:, 4].copy()
    baseline = count_outliers(close, 12.0)
    close[3000] *= 3  # a fat-finger print: one spike up, one down
    assert count_outliers(close, 12.0) == baseline + 2


def test_quality_and_gaps_cli(
    market: MarketStore, binance_dir: Path, make_settings: object
) -> None:
    settings = market.stores.settings
    market.write_ohlcv(
        load_rows(binance_dir / "LINK_USDT-1h.json"),
        symbol="LINK/USDT",
        timeframe="1h",
        exchange="binance",
    )
    gaps = invoke_json(settings, "market", "gaps", "LINK/USDT", "-t", "1h", "--json")
    assert [g["missing"] for g in gaps] == [m for _, m in OUTAGES]
    assert set(gaps[0]) == {"start", "end", "missing", "start_iso", "end_iso"}
    quality = invoke_json(settings, "market", "quality", "--json")
    assert quality[0]["symbol"] == "LINK/USDT" and quality[0]["gaps_count"] == 6
    assert quality[0]["staleness_seconds"] > 0
