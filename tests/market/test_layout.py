"""Physical layout: monthly PostgreSQL partitions (rows in the DEFAULT partition moved
on creation), SQLite WITHOUT ROWID; weekly buckets; integer timestamps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import text

from cryptotrading.market import MarketStore
from tests.helpers import load_rows


def test_monthly_partitions_and_default_rows_moved(market: MarketStore, binance_dir: Path) -> None:
    rows = load_rows(binance_dir / "XRP_USDT-1h.json")
    january = [row for row in rows if 1609459200000 <= row[0] < 1612137600000]
    with market.engine.begin() as connection:
        if market.backend == "postgresql":
            # a row that reached the DEFAULT partition before its month had one
            # (e.g. written by an older release or by plain SQL)
            ts, o, h, low, c, v = january[10]
            connection.execute(
                text(
                    "INSERT INTO time_series VALUES ('XRP/USDT', '1h', :ts, 'binance',"
                    " :o, :h, :l, :c, :v, 0)"
                ),
                {"ts": ts, "o": o, "h": h, "l": low, "c": c, "v": v},
            )
    result = market.write_ohlcv(january, symbol="XRP/USDT", timeframe="1h", exchange="binance")
    market.write_ohlcv(rows[:50], symbol="XRP/USDT", timeframe="1h", exchange="binance")
    with market.engine.connect() as connection:
        if market.backend == "postgresql":
            assert result.changed == len(january) - 1  # the moved row was identical
            parts = connection.execute(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'time_series'"
                )
            ).scalars()
            assert {"time_series_p202012", "time_series_p202101"} <= set(parts)
            in_default = connection.execute(text("SELECT COUNT(*) FROM time_series_default"))
            assert in_default.scalar() == 0
            in_january = connection.execute(text("SELECT COUNT(*) FROM time_series_p202101"))
            assert in_january.scalar() == len(january)
        else:
            assert result.changed == len(january)
            sql = connection.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'time_series'")
            ).scalar()
            assert "WITHOUT ROWID" in str(sql)
            kinds = connection.execute(
                text("SELECT DISTINCT typeof(timestamp), typeof(open) FROM time_series")
            ).all()
            assert kinds == [("integer", "real")]
    stored = market.read_ohlcv("XRP/USDT", "1h", as_="numpy")
    assert len(stored) == len(january) + 50
    assert stored["timestamp"].tolist() == sorted(r[0] for r in january + rows[:50])


def test_weekly_buckets_open_on_monday(market: MarketStore, market_data_dir: Path) -> None:
    from cryptotrading.market.formats import read_candles_file

    daily = read_candles_file(market_data_dir / "basana_testdata" / "binance_btcusdt_day_2020.csv")
    market.write_ohlcv(daily, symbol="BTC/USDT", timeframe="1d", exchange="binance")
    weeks = market.read_ohlcv("BTC/USDT", "1w", exchange="binance")
    assert (weeks.index.day_of_week == 0).all()  # Mondays 00:00 UTC
    assert str(weeks.index[0].date()) == "2019-12-30"  # the week holding 2020-01-01
    assert weeks["open"].iloc[0] == daily.open[0]
    assert weeks["close"].iloc[1] == daily.close[11]  # Monday 6 .. Sunday 12 January
    assert np.isclose(weeks["volume"].sum(), daily.volume.sum(), rtol=1e-12)
    complete = market.read_ohlcv("BTC/USDT", "1w", complete_only=True)
    assert len(complete) == len(weeks) - 2  # the first and last weeks are partial
    later = market.read_ohlcv("BTC/USDT", "1w", start="2020-01-08")
    assert str(later.index[0].date()) == "2020-01-13"  # a start inside a week skips it


def test_raw_write_paths_are_idempotent(market: MarketStore, binance_dir: Path) -> None:
    """The driver-level writers on an already stored range: PostgreSQL's direct COPY
    falls back to the upsert (unique violation inside a savepoint), SQLite compares
    the stored range value for value; either way nothing is duplicated or lost."""
    from cryptotrading.market import postgres_io, sqlite_io
    from cryptotrading.market.candles import to_candles

    rows = load_rows(binance_dir / "ADA_USDT-1h.json")[:3000]
    market.write_ohlcv(rows, symbol="ADA/USDT", timeframe="1h")
    candles = to_candles(rows[1000:2500])
    changed_close = candles.close.copy()
    changed_close[7] = changed_close[7] * 1.001
    high = candles.high.copy()
    high[7] = max(high[7], changed_close[7])
    moved = type(candles)(
        candles.timestamp, candles.open, high, candles.low, changed_close, candles.volume
    )
    with market._connection(write=True) as conn:
        if market.backend == "postgresql":
            again = postgres_io.insert_new(conn, "ADA/USDT", "1h", "", candles, 1)
            updated = postgres_io.insert_new(conn, "ADA/USDT", "1h", "", moved, 2)
        else:
            again = sqlite_io.write(conn, "ADA/USDT", "1h", "", candles, 1)
            updated = sqlite_io.write(conn, "ADA/USDT", "1h", "", moved, 2)
    assert (again, updated) == (0, 1)
    stored = market.read_ohlcv("ADA/USDT", "1h", as_="numpy")
    assert len(stored) == 3000
    assert stored["close"][1007] == changed_close[7]
