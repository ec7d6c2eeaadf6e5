"""Concurrency: parallel writers of new months lose nothing; large reads during writes
see committed states only."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from cryptotrading.market import MarketStore
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, load_rows, settings_env

PAIRS = ("ADA", "DOGE", "DOT", "LINK")


def test_parallel_writers_creating_the_same_partitions(
    make_settings: SettingsFactory, binance_dir: Path
) -> None:
    settings: Settings = make_settings("three")
    data = {base: load_rows(binance_dir / f"{base}_USDT-1h.json") for base in PAIRS}

    def writer(base: str) -> int:
        with Stores(settings) as stores:
            market = MarketStore(stores)
            rows = data[base]
            total = 0
            for begin in range(0, len(rows), 700):  # many small transactions, all months
                total += market.write_ohlcv(
                    rows[begin : begin + 700], symbol=f"{base}/USDT", timeframe="1h"
                ).changed
            return total

    with ThreadPoolExecutor(len(PAIRS)) as pool:
        changed = list(pool.map(writer, PAIRS))
    assert changed == [5482] * len(PAIRS)
    with Stores(settings) as stores:
        series = MarketStore(stores).series()
    assert [(s.symbol, s.rows) for s in series] == [(f"{b}/USDT", 5482) for b in PAIRS]


WRITER = """
import json, sys
from cryptotrading import Stores, load_settings
from cryptotrading.market import MarketStore

rows = json.load(open(sys.argv[1]))
with Stores(load_settings()) as stores:
    market = MarketStore(stores)
    for begin in range(25_000, len(rows), 2_000):  # one committed batch of 2,000 each
        market.write_ohlcv(rows[begin : begin + 2_000], symbol="BTC/USDT", timeframe="5m")
"""


@pytest.mark.slow  # reader and writer processes for seconds
def test_large_reads_during_writes_see_whole_batches(
    market: MarketStore, binance_dir: Path
) -> None:
    """While another process commits batches of 2,000 candles, every large read (the
    native loop on SQLite, COPY on PostgreSQL) returns a committed state: the first
    25,000 candles plus whole batches, in order, values intact."""
    path = binance_dir / "BTC_USDT-5m.json"
    rows = load_rows(path)
    market.write_ohlcv(rows[:25_000], symbol="BTC/USDT", timeframe="5m")
    env = {**os.environ, **settings_env(market.stores.settings)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env)
    closes = np.asarray([row[4] for row in rows])
    seen: set[int] = set()

    def read() -> None:
        frame = market.read_ohlcv("BTC/USDT", "5m")
        count = len(frame)
        assert count == len(rows) or (count - 25_000) % 2_000 == 0, count
        assert frame["timestamp"].tolist() == [row[0] for row in rows[:count]]
        assert (frame["close"].to_numpy() == closes[:count]).all()
        seen.add(count)

    try:
        while writer.poll() is None:
            read()
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0
    read()  # after the last commit
    assert len(seen) >= 2 and max(seen) == len(rows)
