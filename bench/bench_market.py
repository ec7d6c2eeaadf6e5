"""Market-data benchmark: ingest and read of 1M candles (10 symbols x 100k 1m).

    .venv/bin/python bench/bench_market.py [--rows-per-symbol 100000] [--slow-rows 100000]
                                           [--backend sqlite|postgresql|both]

Every figure is a ratio against a baseline measured in the same run, on the same
``time_series`` table (a fresh, migrated market store per method):

ingest (SQLite)   ``MarketStore.write_ohlcv`` from a DataFrame vs pandas
                  ``to_sql(method="multi", chunksize=1000)`` (through the SQLAlchemy
                  engine, and on a raw ``sqlite3`` connection), SQLAlchemy ORM
                  ``add_all`` and raw ``sqlite3.executemany``; re-ingest of the same
                  million rows vs the fresh ingest.
read              one symbol's 100k rows into a DataFrame vs ``pandas.read_sql``
                  through a SQLAlchemy engine and raw ``sqlite3`` fetchall -> numpy;
                  also the first read of a new process and the ``sqlite3``-module
                  path (``native_reads=false``).
panel             ``read_panel`` of the 10 symbols' closes vs a loop of ``read_ohlcv``.
latest            ``latest()`` of 10 symbols (index probes) vs a GROUP BY scan.
resample          100k 1m -> 1h read-and-resample vs raw read + pandas ``resample``.
size              on-disk bytes per candle.
PostgreSQL        ingest, re-ingest and read vs pandas ``to_sql`` multi and
                  ``pandas.read_sql`` on the same server.

The slow baselines (pandas through the engine, ORM ``add_all``) are timed on
``--slow-rows`` rows and compared as rows per second.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from cryptotrading.market import MarketStore
from cryptotrading.models.market import TimeSeries
from cryptotrading.ops.lifecycle import initialize
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores

SELECT = "SELECT timestamp, open, high, low, close, volume FROM time_series"
DBSTAT = (
    "SELECT SUM(pgsize) FROM dbstat"
    " WHERE name IN ('time_series', 'ix_time_series_symbol_timestamp')"
)
PG_SIZE = (
    "SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_inherits i"
    " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
    " WHERE p.relname = 'time_series'"
)
PG_ADMIN = os.environ.get(
    "CRYPTOTRADING_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SYMBOLS = [f"SYM{n}/USDT" for n in range(10)]
START = 1_600_000_000_000 - 1_600_000_000_000 % 3_600_000
COLUMNS = [
    *("symbol", "frequency", "timestamp", "exchange"),
    *("open", "high", "low", "close", "volume", "ingested_at"),
]


def frames(per_symbol: int) -> dict[str, pd.DataFrame]:
    """One valid random-walk 1m DataFrame per symbol."""
    rng = np.random.default_rng(7)
    out = {}
    for symbol in SYMBOLS:
        close = 100 * np.exp(rng.normal(0, 0.001, per_symbol).cumsum())
        open_ = np.r_[close[0], close[:-1]]
        spread = np.abs(rng.normal(0, 0.0005, per_symbol)) * close
        out[symbol] = pd.DataFrame(
            {
                "timestamp": START + np.arange(per_symbol, dtype=np.int64) * 60_000,
                "open": open_,
                "high": np.maximum(open_, close) + spread,
                "low": np.minimum(open_, close) - spread,
                "close": close,
                "volume": rng.gamma(2.0, 10.0, per_symbol),
            }
        )
    return out


def wide(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """The frame with every ``time_series`` column (for the pandas / ORM baselines)."""
    return frame.assign(symbol=symbol, frequency="1m", exchange="", ingested_at=0)[COLUMNS]


def timed(action: Callable[[], Any]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def best(action: Callable[[], Any], repeat: int = 5) -> float:
    return min(timed(action) for _ in range(repeat))


COLD_READ = """
import sys, time
from cryptotrading.market import MarketStore
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
market = MarketStore(Stores(Settings(data_dir=sys.argv[1], layout="three")))
began = time.perf_counter()
market.read_ohlcv(sys.argv[2], "1m")
print(time.perf_counter() - began)
"""


def cold_read(data_dir: Path, symbol: str) -> float:
    """Seconds of the first ``read_ohlcv`` in a new process (imports excluded)."""
    out = subprocess.run(
        [sys.executable, "-c", COLD_READ, str(data_dir), symbol],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())


class Fresh:
    """Fresh migrated market stores (SQLite files or PostgreSQL databases)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.root = Path(tempfile.mkdtemp(prefix="bench-market-"))
        self.opened: list[Stores] = []
        self.databases: list[str] = []
        self.admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")

    def stores(self) -> Stores:
        data_dir = self.root / f"d{len(self.opened)}"
        if self.backend == "sqlite":
            stores = Stores(Settings(data_dir=data_dir, layout="three"))
            initialize(stores)
        else:
            urls = {}
            for name in ("app_url", "market_url"):
                database = f"bench_market_{os.getpid()}_{uuid.uuid4().hex[:8]}"
                with self.admin.connect() as connection:
                    connection.execute(text(f'CREATE DATABASE "{database}"'))
                self.databases.append(database)
                urls[name] = str(self.admin.url.set(database=database).render_as_string(False))
            stores = Stores(Settings(data_dir=data_dir, layout="two", **urls))  # type: ignore[arg-type]
            initialize(stores)
        self.opened.append(stores)
        return stores

    def close(self) -> None:
        for stores in self.opened:
            stores.close()
        with self.admin.connect() as connection:
            for database in self.databases:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        self.admin.dispose()


def report(name: str, value: float, unit: str, note: str = "") -> None:
    print(f"  {name:<58} {value:>14,.3f} {unit:<8} {note}")


def ingest_ours(stores: Stores, data: dict[str, pd.DataFrame]) -> float:
    market = MarketStore(stores)
    return timed(lambda: [market.write_ohlcv(f, symbol=s, timeframe="1m") for s, f in data.items()])


def market_file(stores: Stores) -> Path:
    path = stores.market.path
    assert path is not None
    return path


def raw_connection(path: Path, *, autocommit: bool = True) -> sqlite3.Connection:
    """A plain sqlite3 connection with the page cache and sync level of our engine
    (without *autocommit*, the sqlite3 module opens transactions as pandas expects)."""
    conn = sqlite3.connect(path, isolation_level=None if autocommit else "DEFERRED")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -65536")
    return conn


def to_sql_through_engine(
    stores: Stores, data: dict[str, pd.DataFrame], slow_rows: int
) -> tuple[float, int]:
    """Seconds of pandas ``to_sql(method="multi", chunksize=1000)`` through the
    SQLAlchemy engine of *stores*' market store on the first *slow_rows* candles
    (split over the symbols), and the number of candles written."""
    per_symbol = max(1, slow_rows // len(SYMBOLS))
    engine = stores.engine(stores.market)

    def to_sql() -> None:
        with engine.begin() as connection:
            for symbol, frame in data.items():
                wide(frame.iloc[:per_symbol], symbol).to_sql(
                    "time_series",
                    connection,
                    if_exists="append",
                    index=False,
                    method="multi",
                    chunksize=1000,
                )

    return timed(to_sql), per_symbol * len(SYMBOLS)


def bench_sqlite(per_symbol: int, slow_rows: int, repeat: int) -> None:
    data = frames(per_symbol)
    total = per_symbol * len(SYMBOLS)
    fresh = Fresh("sqlite")
    print(
        f"SQLite {sqlite3.sqlite_version}: {total:,} candles", f"({len(SYMBOLS)} x {per_symbol:,})"
    )
    try:

        def executemany(path: Path) -> None:
            conn = raw_connection(path)
            conn.execute("BEGIN IMMEDIATE")
            for symbol, frame in data.items():
                rows = wide(frame, symbol).itertuples(index=False, name=None)
                conn.executemany(f"INSERT INTO time_series VALUES ({','.join('?' * 10)})", rows)
            conn.execute("COMMIT")
            conn.close()

        def to_sql_raw(path: Path) -> None:
            conn = raw_connection(path, autocommit=False)
            for symbol, frame in data.items():
                wide(frame, symbol).to_sql(
                    "time_series",
                    conn,
                    if_exists="append",
                    index=False,
                    method="multi",
                    chunksize=1000,
                )
            conn.commit()
            conn.close()

        # Alternate the methods and keep each one's best of --repeat runs, each into
        # a fresh store: the machine is shared, so single runs are noisy.
        ours = again = raw = pandas_raw = float("inf")
        for _ in range(repeat):
            ours_store = fresh.stores()
            ours = min(ours, ingest_ours(ours_store, data))
            again = min(again, ingest_ours(ours_store, data))
            raw = min(raw, timed(lambda: executemany(market_file(fresh.stores()))))
            pandas_raw = min(pandas_raw, timed(lambda: to_sql_raw(market_file(fresh.stores()))))

        pandas_engine, slow_total = to_sql_through_engine(fresh.stores(), data, slow_rows)
        slow_per_symbol = slow_total // len(SYMBOLS)
        subset = {s: f.iloc[:slow_per_symbol] for s, f in data.items()}

        orm_store = fresh.stores()
        orm_engine = orm_store.engine(orm_store.market)

        def orm() -> None:
            with Session(orm_engine) as session, session.begin():
                for symbol, frame in subset.items():
                    session.add_all(
                        TimeSeries(**cast(dict[str, Any], row))
                        for row in wide(frame, symbol).to_dict("records")
                    )

        orm_time = timed(orm)

        ours_rate = total / ours
        print(" ingest")
        report("MarketStore.write_ohlcv (DataFrame)", ours_rate, "rows/s")
        report("re-ingest of the same rows", again / ours, "x fresh", "(target <= 0.7)")
        report(
            "raw sqlite3 executemany (plain INSERT)",
            total / raw,
            "rows/s",
            f"ours = {ours_rate / (total / raw):.2f}x",
        )
        report(
            "pandas to_sql multi/1000, raw sqlite3 connection",
            total / pandas_raw,
            "rows/s",
            f"ours = {ours_rate / (total / pandas_raw):.2f}x (target >= 1.5)",
        )
        report(
            f"pandas to_sql multi/1000, SQLAlchemy engine ({slow_total:,} rows)",
            slow_total / pandas_engine,
            "rows/s",
            f"ours = {ours_rate / (slow_total / pandas_engine):.1f}x (target >= 1.5)",
        )
        report(
            f"SQLAlchemy ORM add_all ({slow_total:,} rows)",
            slow_total / orm_time,
            "rows/s",
            f"ours = {ours_rate / (slow_total / orm_time):.1f}x (target >= 20)",
        )

        market = MarketStore(ours_store)
        symbol = SYMBOLS[3]
        ours_read = best(lambda: market.read_ohlcv(symbol, "1m"))
        read_engine = ours_store.engine(ours_store.market)
        query = SELECT + " WHERE symbol = ? AND frequency = '1m' ORDER BY timestamp"
        pandas_read = best(lambda: pd.read_sql(query.replace("?", f"'{symbol}'"), read_engine))
        market_path = ours_store.market.path
        assert market_path is not None
        raw_conn = sqlite3.connect(market_path)

        def raw_fetch() -> np.ndarray:
            return np.array(raw_conn.execute(query, (symbol,)).fetchall())

        raw_read = best(raw_fetch)
        plain_settings = ours_store.settings.model_copy(update={"native_reads": False})
        with Stores(plain_settings) as plain_stores:
            plain_market = MarketStore(plain_stores)
            plain_read = best(lambda: plain_market.read_ohlcv(symbol, "1m"))
        first_read = cold_read(ours_store.settings.data_dir, symbol)
        print(f" read one symbol ({per_symbol:,} rows) into a DataFrame")
        report("MarketStore.read_ohlcv", ours_read * 1000, "ms")
        report(
            "  first read of a new process (loads the compiled loop)",
            first_read * 1000,
            "ms",
        )
        report(
            "  through the sqlite3 module (native_reads=false)",
            plain_read * 1000,
            "ms",
            f"native {plain_read / ours_read:.2f}x faster",
        )
        report(
            "pandas.read_sql through a SQLAlchemy engine",
            pandas_read * 1000,
            "ms",
            f"ours {pandas_read / ours_read:.2f}x faster (target >= 2)",
        )
        report(
            "raw sqlite3 fetchall -> numpy",
            raw_read * 1000,
            "ms",
            f"ours {raw_read / ours_read:.2f}x faster (target >= 1)",
        )

        panel_read = best(lambda: market.read_panel(SYMBOLS, "1m"), 3)
        loop_read = best(lambda: [market.read_ohlcv(s, "1m") for s in SYMBOLS], 3)
        print(f" read the closes of all {len(SYMBOLS)} symbols ({total:,} candles) side by side")
        report("MarketStore.read_panel (4 threads)", panel_read * 1000, "ms")
        report(
            "a loop of read_ohlcv over the symbols",
            loop_read * 1000,
            "ms",
            f"read_panel {loop_read / panel_read:.2f}x faster",
        )

        market.latest(SYMBOLS)
        calls = 200
        latest = timed(lambda: [market.latest(SYMBOLS) for _ in range(calls)]) / calls
        scan = best(
            lambda: raw_conn.execute(
                "SELECT symbol, MAX(timestamp) FROM time_series GROUP BY symbol"
            ).fetchall(),
            3,
        )
        print(" latest candle of 10 symbols")
        report("MarketStore.latest", latest * 1e6, "us", "(target < 1000 us)")
        report("GROUP BY scan", scan * 1e6, "us", f"latest {scan / latest:.0f}x faster")

        ours_resample = best(lambda: market.read_ohlcv(symbol, "1h"))

        def pandas_resample() -> pd.DataFrame:
            frame = pd.DataFrame(
                raw_conn.execute(query, (symbol,)).fetchall(),
                columns=["timestamp", "open", "high", "low", "close", "volume"],
            )
            frame.index = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
            agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
            return frame.resample("1h").agg(agg).dropna()

        base_resample = best(pandas_resample)
        check = pandas_resample()
        mine = market.read_ohlcv(symbol, "1h")
        assert np.array_equal(check["close"].to_numpy(), mine["close"].to_numpy())
        print(f" {per_symbol:,} 1m -> 1h read and resample")
        report(
            "MarketStore.read_ohlcv(..., '1h')",
            ours_resample * 1000,
            "ms",
            f"{ours_resample / base_resample:.2f}x of baseline (target <= 1.5)",
        )
        report("raw read + pandas resample", base_resample * 1000, "ms")
        raw_conn.close()

        ours_store.close()
        size_conn = sqlite3.connect(market_path, isolation_level=None)
        size_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = size_conn.execute(DBSTAT).fetchone()[0]
        size_conn.close()
        print(" size")
        report("time_series + index bytes per candle (dbstat)", float(pages or 0) / total, "bytes")
        report("whole file bytes per candle", market_path.stat().st_size / total, "bytes")
    finally:
        fresh.close()


def bench_postgresql(per_symbol: int, slow_rows: int) -> None:
    data = frames(per_symbol)
    total = per_symbol * len(SYMBOLS)
    fresh = Fresh("postgresql")
    print(f"PostgreSQL: {total:,} candles ({len(SYMBOLS)} symbols x {per_symbol:,} 1m)")
    try:
        stores = fresh.stores()
        ours = ingest_ours(stores, data)
        again = ingest_ours(stores, data)
        pandas_time, slow_total = to_sql_through_engine(fresh.stores(), data, slow_rows)
        print(" ingest")
        report("MarketStore.write_ohlcv (binary COPY + upsert)", total / ours, "rows/s")
        report("re-ingest of the same rows", again / ours, "x fresh")
        report(
            f"pandas to_sql multi/1000 ({slow_total:,} rows)",
            slow_total / pandas_time,
            "rows/s",
            f"ours = {(total / ours) / (slow_total / pandas_time):.2f}x",
        )
        market = MarketStore(stores)
        symbol = SYMBOLS[3]
        ours_read = best(lambda: market.read_ohlcv(symbol, "1m"))
        read_engine = stores.engine(stores.market)
        query = SELECT + f" WHERE symbol = '{symbol}' AND frequency = '1m' ORDER BY timestamp"
        pandas_read = best(lambda: pd.read_sql(query, read_engine))
        print(f" read one symbol ({per_symbol:,} rows)")
        report("MarketStore.read_ohlcv (binary COPY)", ours_read * 1000, "ms")
        report(
            "pandas.read_sql through a SQLAlchemy engine",
            pandas_read * 1000,
            "ms",
            f"ours {pandas_read / ours_read:.2f}x faster",
        )
        market.latest(SYMBOLS)
        latest = timed(lambda: [market.latest(SYMBOLS) for _ in range(100)]) / 100
        report("latest() of 10 symbols", latest * 1e6, "us")
        with read_engine.connect() as connection:
            size = connection.exec_driver_sql(PG_SIZE).scalar()
        report(
            "time_series partitions + indexes bytes per candle", float(size or 0) / total, "bytes"
        )
    finally:
        fresh.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows-per-symbol", type=int, default=100_000)
    parser.add_argument("--slow-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N ingest runs")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    if args.backend in ("sqlite", "both"):
        bench_sqlite(args.rows_per_symbol, args.slow_rows, args.repeat)
    if args.backend in ("postgresql", "both"):
        bench_postgresql(args.rows_per_symbol, args.slow_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
