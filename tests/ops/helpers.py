"""Helpers of the operations tests: rows in real stores, a concurrent writer, replica
comparisons, dropping a PostgreSQL database kept aside by a restore."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from cryptotrading.models import CacheEntry, SystemMetric, TimeSeries, metadata
from cryptotrading.stores import Stores
from tests.helpers import ROOT

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


def fill(stores: Stores, candles: int = 500, metrics: int = 25) -> None:
    """*candles* hourly candles in the market store, *metrics* metrics in the app store."""
    insert_candles(stores.engine("market"), 0, candles)
    insert_metrics(stores.engine("app"), metrics)


def start_writer(url: str, batch: int) -> subprocess.Popen[str]:
    """``tests.ops.writer`` inserting candles into *url* in batches of *batch*, started
    and ready (it printed ``ready``)."""
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.ops.writer", url, str(batch)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "ready"
    return writer


def drop_pg(url: str, database: str) -> None:
    """Drop *database* on the PostgreSQL server of *url* (e.g. one a restore kept aside)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from cryptotrading.db.engine import normalize_url

    admin = create_engine(
        make_url(normalize_url(url)).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    admin.dispose()


def table_rows(engine: Engine, name: str) -> list[tuple[Any, ...]]:
    """Every row of a table, in primary-key order."""
    table = metadata.tables[name]
    query = select(table).order_by(*table.primary_key.columns)
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def assert_in_step(stores: Stores, *names: str) -> None:
    for name in names:
        source = stores.market if name == "time_series" else stores.app
        assert table_rows(stores.engine(source), name) == table_rows(
            stores.engine("replica"), name
        ), name


def put_cache(engine: Engine, key: str, value: dict[str, Any]) -> None:
    table = CacheEntry.__table__
    now = datetime.now(UTC)
    with engine.begin() as connection:
        changed = connection.execute(
            update(table).where(table.c.cache_key == key).values(value=value, updated_at=now)
        ).rowcount
        if not changed:
            connection.execute(insert(table), {"cache_key": key, "value": value, "updated_at": now})
