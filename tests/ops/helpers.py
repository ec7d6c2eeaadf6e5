"""Small helpers shared by the operations tests: real rows in real stores."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, func, insert, select

from cryptotrading.models import SystemMetric, TimeSeries

HOUR_MS = 3_600_000
BASE_TS = 1_609_459_200_000  # 2021-01-01T00:00:00Z


def candle_rows(start: int, count: int, symbol: str = "BTC/USDT") -> list[dict[str, Any]]:
    """*count* hourly candles numbered from *start* (timestamps unique per number)."""
    now = int(time.time() * 1000)
    return [
        {
            "symbol": symbol,
            "frequency": "1h",
            "timestamp": BASE_TS + n * HOUR_MS,
            "exchange": "binance",
            "open": 100.0 + n,
            "high": 101.0 + n,
            "low": 99.0 + n,
            "close": 100.5 + n,
            "volume": 10.0 + n,
            "ingested_at": now,
        }
        for n in range(start, start + count)
    ]


def insert_candles(engine: Engine, start: int, count: int, symbol: str = "BTC/USDT") -> None:
    with engine.begin() as connection:
        connection.execute(insert(TimeSeries.__table__), candle_rows(start, count, symbol))


def insert_metrics(engine: Engine, count: int, name: str = "test.metric") -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(SystemMetric.__table__),
            [{"metric_name": name, "value": float(n), "component": "test"} for n in range(count)],
        )


def count_rows(engine: Engine, table: str) -> int:
    from cryptotrading.models import metadata

    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(metadata.tables[table])
            ).scalar_one()
        )
