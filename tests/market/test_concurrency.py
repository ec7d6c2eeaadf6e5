"""Concurrent writers (separate connections) of new months: nothing lost, no errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptotrading.market import MarketStore
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.conftest import SettingsFactory
from tests.market.conftest import load_rows

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
