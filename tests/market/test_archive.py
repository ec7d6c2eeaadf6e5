"""``market archive`` + transparent reads over the hot store and the Parquet archive."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from sqlalchemy import text

from cryptotrading.market import MarketStore
from cryptotrading.market.archive import archive_time_series
from cryptotrading.stores import Stores
from tests.helpers import invoke, invoke_json, load_rows

NOW = datetime(2021, 7, 18, tzinfo=UTC)


def _hot_rows(market: MarketStore) -> int:
    return sum(info.rows - info.archived for info in market.series())


def test_reads_span_hot_and_archive(market: MarketStore, binance_dir: Path) -> None:
    five = load_rows(binance_dir / "ETH_USDT-5m.json")
    hourly = np.asarray(load_rows(binance_dir / "ETH_USDT-1h.json"))
    market.write_ohlcv(five, symbol="ETH/USDT", timeframe="5m", exchange="binance")
    before = market.read_ohlcv("ETH/USDT", "1h", as_="numpy")
    report = archive_time_series(market.engine, market.archive_dir, timedelta(days=120), now=NOW)
    assert report.rows > 30_000 and _hot_rows(market) == len(five) - report.rows
    after = market.read_ohlcv("ETH/USDT", "1h", as_="numpy")
    assert (after == before).all()
    assert after["close"].tolist()[: len(hourly)] == hourly[:, 4].tolist()
    window = market.read_ohlcv("ETH/USDT", "5m", start="2021-03-01", end="2021-03-02")
    assert len(window) == 288  # a day of the archived months
    assert market.timeframes("ETH/USDT") == ["5m"]
    # a candle both archived and hot (a crash between the two steps): the hot copy wins
    first = list(five[100])
    first[4] = first[4] * 1.0001
    first[2] = max(first[2], first[4])
    market.write_ohlcv([first], symbol="ETH/USDT", timeframe="5m", exchange="binance")
    merged = market.read_ohlcv("ETH/USDT", "5m", as_="numpy")
    assert len(merged) == len(five)
    assert merged["close"][100] == first[4]


def test_archive_only_series_and_several_exchanges(market: MarketStore, binance_dir: Path) -> None:
    rows = load_rows(binance_dir / "LTC_USDT-1h.json")
    market.write_ohlcv(rows, symbol="LTC/USDT", timeframe="1h", exchange="binance")
    archive_time_series(
        market.engine, market.archive_dir, timedelta(days=14), now=NOW + timedelta(days=30)
    )
    assert _hot_rows(market) == 0
    daily = market.read_ohlcv("LTC/USDT", "1d", exchange="binance")
    assert len(daily) == 229 and daily["open"].iloc[0] == rows[0][1]
    market.write_ohlcv(rows[-24:], symbol="LTC/USDT", timeframe="1h", exchange="kraken")
    try:
        market.read_ohlcv("LTC/USDT", "1h")
    except Exception as exc:
        assert "several exchanges: 'binance', 'kraken'" in str(exc)
    else:
        raise AssertionError("expected a ValidationError")
    assert len(market.read_ohlcv("LTC/USDT", "1h", exchange="kraken")) == 24


def test_series_and_latest_include_the_archive(market: MarketStore, binance_dir: Path) -> None:
    btc = load_rows(binance_dir / "BTC_USDT-1h.json")
    doge = load_rows(binance_dir / "DOGE_USDT-1h.json")
    market.write_ohlcv(btc, symbol="BTC/USDT", timeframe="1h", exchange="binance")
    market.write_ohlcv(doge, symbol="DOGE/USDT", timeframe="1h", exchange="binance")
    before = market.latest(["BTC/USDT", "DOGE/USDT"])
    report = archive_time_series(market.engine, market.archive_dir, timedelta(days=60), now=NOW)
    moved = {
        symbol: sum(p["rows"] for p in report.partitions if p["symbol"] == symbol)
        for symbol in ("BTC/USDT", "DOGE/USDT")
    }
    assert 0 < moved["BTC/USDT"] < len(btc) and 0 < moved["DOGE/USDT"] < len(doge)
    # BTC entirely archived; DOGE keeps its recent candles hot
    with market.engine.begin() as conn:
        conn.execute(text("DELETE FROM time_series WHERE symbol = 'BTC/USDT'"))
    series = {info.symbol: info for info in market.series()}
    newest_archived = btc[moved["BTC/USDT"] - 1]
    assert series["BTC/USDT"].rows == series["BTC/USDT"].archived == moved["BTC/USDT"]
    assert (series["BTC/USDT"].first, series["BTC/USDT"].last) == (btc[0][0], newest_archived[0])
    assert series["DOGE/USDT"].rows == len(doge)
    assert series["DOGE/USDT"].archived == moved["DOGE/USDT"]
    assert (series["DOGE/USDT"].first, series["DOGE/USDT"].last) == (doge[0][0], doge[-1][0])
    latest = market.latest(["BTC/USDT", "DOGE/USDT", "XRP/USDT"])
    assert latest["DOGE/USDT"] == before["DOGE/USDT"]
    assert latest["BTC/USDT"][3:] == tuple(newest_archived)
    assert latest["BTC/USDT"][:3] == ("BTC/USDT", "1h", "binance")
    assert "XRP/USDT" not in latest
    # a back-filled hot candle older than the archive does not hide the newer archived one
    market.write_ohlcv([btc[0]], symbol="BTC/USDT", timeframe="1h", exchange="kraken")
    assert market.latest("BTC/USDT")["BTC/USDT"].timestamp == newest_archived[0]
    assert market.latest("BTC/USDT", exchange="kraken")["BTC/USDT"].timestamp == btc[0][0]
    listed = invoke_json(market.stores.settings, "market", "list", "--json")
    assert {(item["symbol"], item["exchange"], item["archived"]) for item in listed} == {
        ("BTC/USDT", "binance", moved["BTC/USDT"]),
        ("BTC/USDT", "kraken", 0),
        ("DOGE/USDT", "binance", moved["DOGE/USDT"]),
    }


def test_archive_cli(market: MarketStore, binance_dir: Path) -> None:
    settings = market.stores.settings
    rows = load_rows(binance_dir / "SOL_USDT-1h.json")
    market.write_ohlcv(rows, symbol="SOL/USDT", timeframe="1h")
    plan = invoke_json(settings, "market", "archive", "--older-than", "1d", "--dry-run", "--json")
    assert plan["dry_run"] and plan["rows"] == len(rows) and len(plan["partitions"]) == 8
    assert {p["month"] for p in plan["partitions"]} >= {"2020-12", "2021-07"}
    assert _hot_rows(market) == len(rows) and not market.archive_dir.exists()
    report = invoke_json(settings, "market", "archive", "--older-than", "2000w", "--json")
    assert report["rows"] == 0  # nothing is 38 years old
    report = invoke_json(settings, "market", "archive", "--older-than", "1d", "--json")
    assert report["rows"] == len(rows) and Path(report["archive_dir"]).is_dir()
    with Stores(settings) as stores:
        assert _hot_rows(MarketStore(stores)) == 0
    shown = invoke_json(settings, "market", "show", "SOL/USDT", "-t", "1h", "--output", "json")
    assert [item["timestamp"] for item in shown] == [row[0] for row in rows]


def test_verify_archive_and_db_check_catch_damaged_partitions(
    market: MarketStore, binance_dir: Path
) -> None:
    """A partition file changed on disk, one without its manifest and one that is not
    Parquet are each named by `market verify-archive` and fail `db check` (exit 1);
    an intact archive passes both."""
    settings = market.stores.settings
    rows = load_rows(binance_dir / "XRP_USDT-1h.json")
    market.write_ohlcv(rows, symbol="XRP/USDT", timeframe="1h", exchange="binance")
    archive_time_series(market.engine, market.archive_dir, timedelta(days=60), now=NOW)
    intact = invoke_json(settings, "market", "verify-archive", "--json")
    assert intact["ok"] and len(intact["partitions"]) == 6
    assert sum(p["rows"] for p in intact["partitions"]) == _archived_rows(market)
    checked = invoke_json(settings, "db", "check", "--json")
    assert (
        checked["ok"]
        and {"store": "archive", "check": "partitions", "ok": True, "detail": ""}
        in checked["results"]
    )

    files = sorted(market.archive_dir.rglob("candles.parquet"))
    table = pq.read_table(files[0])
    pq.write_table(table.slice(1), files[0])  # one candle lost
    (files[1].parent / "_manifest.json").unlink()
    files[2].write_bytes(b"not parquet at all")
    result = invoke(settings, "market", "verify-archive", "--json")
    assert result.exit_code == 1
    problems = {
        Path(p["partition"]).name: p["problem"] for p in json.loads(result.stdout)["partitions"]
    }
    assert "rows do not match the manifest" in problems[files[0].parent.name]
    assert problems[files[1].parent.name].startswith("no manifest")
    assert problems[files[2].parent.name].startswith("unreadable Parquet file")
    assert sum(1 for problem in problems.values() if not problem) == 3
    failed = invoke(settings, "db", "check", "--json")
    assert failed.exit_code == 1
    (archive,) = [r for r in json.loads(failed.stdout)["results"] if r["store"] == "archive"]
    assert not archive["ok"] and archive["detail"].startswith("3 of 6 partitions:")


def _archived_rows(market: MarketStore) -> int:
    return sum(info.archived for info in market.series())
