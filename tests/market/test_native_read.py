"""Large reads: the native drain loop returns exactly what SQL returns.

On SQLite, reads of at least ``native_read.MIN_ROWS`` candles step the statement in
compiled code (see :mod:`cryptotrading.market.native_read`); on PostgreSQL they use
binary COPY. Either way the result must equal an independent plain-SQL read.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from cryptotrading.errors import StoreError
from cryptotrading.market import MarketStore, native_read
from cryptotrading.ops.lifecycle import initialize
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import load_rows, settings_env

FIVE_MINUTES = 300_000


def _plain_sql(market: MarketStore, symbol: str, start: int, end: int) -> pd.DataFrame:
    query = text(
        "SELECT timestamp, open, high, low, close, volume FROM time_series"
        " WHERE symbol = :symbol AND frequency = '5m' AND timestamp >= :start"
        " AND timestamp < :end ORDER BY timestamp"
    )
    with market.engine.connect() as conn:
        rows = conn.execute(query, {"symbol": symbol, "start": start, "end": end}).all()
    return pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"])


def _load_btc_5m(market: MarketStore, binance_dir: Path) -> list[list[Any]]:
    rows = load_rows(binance_dir / "BTC_USDT-5m.json")
    market.write_ohlcv(rows, symbol="BTC/USDT", timeframe="5m", exchange="binance")
    return rows


@pytest.fixture
def native_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts reads that took the native path (the real function still runs)."""
    calls: list[int] = []
    real = native_read.read

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(native_read, "read", counted)
    return calls


def test_large_reads_equal_plain_sql(
    market: MarketStore, binance_dir: Path, native_calls: list[int]
) -> None:
    rows = _load_btc_5m(market, binance_dir)
    first, last = rows[0][0], rows[-1][0]
    ranges = [(first, last + 1), (first + 7 * FIVE_MINUTES, last - 3 * FIVE_MINUTES + 1)]
    rng = np.random.default_rng(7)
    for _ in range(4):  # random spans of at least 25k candles inside the data
        begin = int(rng.integers(0, len(rows) - 25_000))
        stop = int(rng.integers(begin + 25_000, len(rows)))
        ranges.append((rows[begin][0], rows[stop][0] + 1))
    for start, end in ranges:
        ours = market.read_ohlcv("BTC/USDT", "5m", start=start, end=end)
        expected = _plain_sql(market, "BTC/USDT", start, end)
        assert len(ours) == len(expected) > 0
        for name in expected.columns:
            assert ours[name].to_numpy().tolist() == expected[name].to_numpy().tolist(), name
    if market.backend == "sqlite":
        assert native_read.available(), "the native read path is off on this machine"
        assert len(native_calls) == len(ranges)


def test_small_reads_take_the_sqlite3_path(
    market: MarketStore, binance_dir: Path, native_calls: list[int]
) -> None:
    rows = _load_btc_5m(market, binance_dir)
    small = market.read_ohlcv("BTC/USDT", "5m", end=rows[0][0] + 1_000 * FIVE_MINUTES)
    assert len(small) == 1_000
    assert native_calls == []


def test_native_and_sqlite3_paths_agree_on_every_shape(
    market: MarketStore, binance_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Empty, one-row, boundary and all-exchange reads, with the row threshold at 1 so
    that every read is native, against the same reads with native reads switched off."""
    rows = _load_btc_5m(market, binance_dir)
    market.write_ohlcv(rows[:3000], symbol="BTC/USDT", timeframe="5m", exchange="kraken")
    first = rows[0][0]
    cases: list[dict[str, Any]] = [
        {"exchange": "binance"},
        {"exchange": "kraken", "start": first + FIVE_MINUTES},
        {"exchange": "binance", "start": first, "end": first + 1},
        {"exchange": "binance", "start": first - 10 * FIVE_MINUTES, "end": first},
        {"exchange": "kraken", "start": rows[2999][0], "end": rows[2999][0] + 1},
        {"exchange": "binance", "start": rows[-1][0] + FIVE_MINUTES},
    ]
    monkeypatch.setattr(native_read, "MIN_ROWS", 1)
    native = [market.read_ohlcv("BTC/USDT", "5m", **case) for case in cases]
    settings = market.stores.settings.model_copy(update={"native_reads": False})
    with Stores(settings) as stores:
        plain = [MarketStore(stores).read_ohlcv("BTC/USDT", "5m", **case) for case in cases]
    for ours, theirs in zip(native, plain, strict=True):
        pd.testing.assert_frame_equal(ours, theirs)
    assert [len(frame) for frame in plain] == [len(rows), 2999, 1, 0, 1, 0]


def test_large_read_sees_committed_data_only_and_does_not_block(
    market: MarketStore, binance_dir: Path
) -> None:
    """A writer holding an open transaction neither blocks a large read nor leaks its
    uncommitted rows into it (WAL snapshot on SQLite, MVCC on PostgreSQL)."""
    rows = _load_btc_5m(market, binance_dir)
    with market.engine.connect() as writer:
        transaction = writer.begin()
        writer.execute(
            text(
                "UPDATE time_series SET close = close * 2"
                " WHERE symbol = 'BTC/USDT' AND frequency = '5m'"
            )
        )
        frame = market.read_ohlcv("BTC/USDT", "5m")
        assert frame["close"].to_numpy().tolist() == [row[4] for row in rows]
        transaction.rollback()


def test_a_failing_native_read_raises_a_store_error(tmp_path: Path) -> None:
    assert native_read.available()
    with pytest.raises(StoreError, match="unable to open database file"):
        native_read.read(
            os.fspath(tmp_path / "missing.db"),
            "SELECT timestamp, open, high, low, close, volume FROM time_series",
            [],
            busy_timeout_ms=100,
            expected=10,
        )


def test_a_failed_native_read_falls_back_to_sqlite3(
    market: MarketStore,
    binance_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = _load_btc_5m(market, binance_dir)

    def failing(*_args: Any, **_kwargs: Any) -> Any:
        raise StoreError("market store read failed: injected (SQLite result code 10)")

    monkeypatch.setattr(native_read, "read", failing)
    frame = market.read_ohlcv("BTC/USDT", "5m")
    assert frame["timestamp"].tolist() == [row[0] for row in rows]
    if market.backend == "sqlite":
        assert "reading through sqlite3 instead: market store read failed: injected" in caplog.text


def test_parallel_large_reads_in_threads(market: MarketStore, binance_dir: Path) -> None:
    """Each native read has its own connection and releases the GIL: four threads
    reading different ranges at once get exactly the serial results."""
    rows = _load_btc_5m(market, binance_dir)
    starts = [rows[i * 8_000][0] for i in range(4)]
    serial = [market.read_ohlcv("BTC/USDT", "5m", start=start) for start in starts]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda s: market.read_ohlcv("BTC/USDT", "5m", start=s), starts))
    for ours, theirs in zip(parallel, serial, strict=True):
        pd.testing.assert_frame_equal(ours, theirs)


def test_a_damaged_file_gives_a_clear_error(tmp_path: Path, binance_dir: Path) -> None:
    """Damaged table pages under a large read: a StoreError that says so and names the
    way out, from the native loop and from the sqlite3 path alike -- never a crash."""
    settings = Settings(data_dir=tmp_path / "data")
    with Stores(settings) as stores:
        initialize(stores)
        _load_btc_5m(MarketStore(stores), binance_dir)
    path = settings.data_dir / "real_market_data.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = path.stat().st_size // 4096
    with path.open("r+b") as handle:
        for page in range(10, pages, 37):  # a broken b-tree page every 37 pages
            handle.seek(page * 4096)
            handle.write(b"\x0d" + b"\xff" * 4095)
    for native in (True, False):
        with Stores(settings.model_copy(update={"native_reads": native})) as stores:
            with pytest.raises(StoreError, match="database file is damaged") as caught:
                MarketStore(stores).read_ohlcv("BTC/USDT", "5m")
            assert "backup restore" in caught.value.hint


def test_columns_grow_past_the_first_allocation(
    market: MarketStore, binance_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first allocation of 1,000 rows doubles six times for 65,741 candles."""
    rows = _load_btc_5m(market, binance_dir)
    monkeypatch.setattr(native_read, "MAX_FIRST_ROWS", 1_000)
    frame = market.read_ohlcv("BTC/USDT", "5m")
    assert frame["timestamp"].tolist() == [row[0] for row in rows]
    assert frame["volume"].tolist() == [row[5] for row in rows]


SMALL_READ = """
import sys
from cryptotrading import Stores, load_settings
from cryptotrading.market import MarketStore

with Stores(load_settings()) as stores:
    frame = MarketStore(stores).read_ohlcv("BTC/USDT", "5m", end=int(sys.argv[1]))
print(len(frame), "numba" in sys.modules)
"""


def test_small_reads_do_not_load_numba(market: MarketStore, binance_dir: Path) -> None:
    """Loading the compiled loop costs ~0.3 s: a process that only reads a little
    never pays it."""
    rows = _load_btc_5m(market, binance_dir)
    out = subprocess.run(
        [sys.executable, "-c", SMALL_READ, str(rows[500][0])],
        env={**os.environ, **settings_env(market.stores.settings)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["500", "False"]
