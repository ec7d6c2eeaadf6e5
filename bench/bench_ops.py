"""Operations benchmarks: backup of a 1M-candle store, replication lag under load.

    .venv/bin/python bench/bench_ops.py [--rows 1000000] [--lag-seconds 20]
                                        [--rate 2000] [--backend sqlite|postgresql|both]

1. **Backup** of a market store holding ``--rows`` candles (10 symbols): our
   ``backup create`` (online copy + integrity check + row counts + gzip + sha256)
   and ``backup verify``, as ratios against the bare copy the backend offers,
   measured in the same run (SQLite: one-step online backup API, uncompressed;
   PostgreSQL: a plain ``pg_dump -Fc``).
2. **Replication lag**: a writer process commits ``--rate`` candles per second (10
   batches a second, plain executemany) into the market store while
   ``cryptotrading replicate --follow --interval 1`` runs; every 0.25 s the newest
   ``ingested_at`` of source and replica are compared. Reported: median / p95 / max
   lag in seconds, and as a ratio of the polling interval.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text

from cryptotrading.ops import backup
from cryptotrading.ops.lifecycle import initialize
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get(
    "CRYPTOTRADING_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SYMBOLS = [f"SYM{n}/USDT" for n in range(10)]
INSERT = (
    "INSERT INTO time_series (symbol, frequency, timestamp, exchange, open, high, low, close,"
    " volume, ingested_at) VALUES (?, '1m', ?, 'bench', ?, ?, ?, ?, ?, ?)"
)


def candles(count: int, start: int = 0) -> list[tuple[Any, ...]]:
    """*count* candles spread over the 10 symbols, one minute apart per symbol."""
    per_symbol = count // len(SYMBOLS)
    now = int(time.time() * 1000)
    rng = np.random.default_rng(7)
    prices = 100 + rng.standard_normal(per_symbol).cumsum()
    rows = []
    for symbol in SYMBOLS:
        for n in range(per_symbol):
            price = float(prices[n])
            ts = 1_600_000_000_000 + (start + n) * 60_000
            rows.append((symbol, ts, price, price + 1, price - 1, price, 10.0, now))
    return rows


def make_stores(backend: str, workdir: Path) -> tuple[Settings, list[str]]:
    data_dir = workdir / f"data-{backend}"
    created: list[str] = []
    overrides: dict[str, Any] = {"data_dir": data_dir, "layout": "three"}
    if backend == "postgresql":
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            for store in ("app", "market", "replica"):
                name = f"bench_ops_{store}_{uuid.uuid4().hex[:6]}"
                connection.execute(text(f'CREATE DATABASE "{name}"'))
                created.append(name)
                url = admin.url.set(database=name).render_as_string(hide_password=False)
                overrides[f"{store}_url"] = url
        admin.dispose()
    settings = Settings(**overrides)
    with Stores(settings) as stores:
        initialize(stores)
    return settings, created


def drop_databases(names: list[str]) -> None:
    if not names:
        return
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def load(settings: Settings, rows: list[tuple[Any, ...]]) -> float:
    started = time.perf_counter()
    with Stores(settings) as stores:
        market = stores.market
        if market.path is not None:
            connection = sqlite3.connect(market.path)
            with connection:
                connection.executemany(INSERT, rows)
            connection.close()
        else:
            import psycopg

            url = stores.engine(market).url.set(drivername="postgresql")
            with psycopg.connect(url.render_as_string(hide_password=False)) as connection:
                connection.execute(
                    "CREATE TABLE IF NOT EXISTS time_series_bench PARTITION OF time_series "
                    "FOR VALUES FROM (1500000000000) TO (1700000000000)"
                )
                with connection.cursor().copy(
                    "COPY time_series (symbol, frequency, timestamp, exchange, open, high, low,"
                    " close, volume, ingested_at) FROM STDIN"
                ) as copy:
                    for symbol, ts, o, h, low, c, v, ing in rows:
                        copy.write_row((symbol, "1m", ts, "bench", o, h, low, c, v, ing))
    return time.perf_counter() - started


def baseline_copy(settings: Settings, target: Path) -> float:
    with Stores(settings) as stores:
        market = stores.market
        started = time.perf_counter()
        if market.path is not None:
            src = sqlite3.connect(market.path)
            dst = sqlite3.connect(target)
            src.backup(dst, pages=-1)
            dst.close()
            src.close()
        else:
            url = stores.engine(market).url.set(drivername="postgresql")
            subprocess.run(
                ["pg_dump", "-Fc", "-f", str(target), url.render_as_string(hide_password=False)],
                check=True,
            )
        return time.perf_counter() - started


def bench_backup(backend: str, count: int, workdir: Path) -> None:
    settings, created = make_stores(backend, workdir)
    try:
        rows = candles(count)
        seconds = load(settings, rows)
        print(f"[{backend}] loaded {len(rows):,} candles in {seconds:.1f} s")
        base = baseline_copy(settings, workdir / f"baseline-{backend}.bin")
        directory = workdir / f"backups-{backend}"
        with Stores(settings) as stores:
            started = time.perf_counter()
            manifest = backup.create_backup(stores, "market", "daily", directory)
            ours = time.perf_counter() - started
            started = time.perf_counter()
            verification = backup.verify_backup(stores, manifest.id, directory)
            verify = time.perf_counter() - started
        size = stores.market.path.stat().st_size if stores.market.path else None
        assert verification.ok, verification.failures()
        print(
            f"[{backend}] backup create of {manifest.row_counts['time_series']:,} candles: "
            f"{ours:.2f} s ({ours / base:.2f}x the bare copy's {base:.2f} s); "
            f"archive {manifest.size_bytes / 1e6:.1f} MB"
            + (f" from {size / 1e6:.1f} MB" if size else "")
        )
        print(f"[{backend}] backup verify: {verify:.2f} s ({verify / base:.2f}x the bare copy)")
    finally:
        drop_databases(created)


def _newest(engine: Any) -> int:
    with engine.connect() as connection:
        return int(
            connection.exec_driver_sql(
                "SELECT coalesce(max(ingested_at), 0) FROM time_series"
            ).scalar()
        )


WRITER = """
import sqlite3, sys, time
import psycopg
url, rate, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
batch = max(1, rate // 10)
n = 0
conn = sqlite3.connect(url, timeout=30) if kind == "sqlite" else psycopg.connect(url)
sql = ("INSERT INTO time_series (symbol, frequency, timestamp, exchange, open, high, low, close,"
       " volume, ingested_at) VALUES (%s, '1m', %s, 'live', 1, 2, 0.5, 1.5, 3, %s)")
if kind == "sqlite":
    sql = sql.replace("%s", "?")
    conn.execute("PRAGMA busy_timeout = 30000")
while True:
    tick = time.monotonic()
    now = int(time.time() * 1000)
    rows = [("LIVE/USDT", 1_650_000_000_000 + (n + i) * 60_000, now) for i in range(batch)]
    n += batch
    with (conn if kind == "sqlite" else conn.transaction()):
        conn.cursor().executemany(sql, rows)
    time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
"""


def bench_lag(backend: str, seconds: float, rate: int, workdir: Path) -> None:
    settings, created = make_stores(backend, workdir / "lag")
    env = {
        **os.environ,
        "CRYPTOTRADING_DATA_DIR": str(settings.data_dir),
        "CRYPTOTRADING_LAYOUT": "three",
    }
    for name in ("app_url", "market_url", "replica_url"):
        if getattr(settings, name):
            env[f"CRYPTOTRADING_{name.upper()}"] = getattr(settings, name)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with Stores(settings) as stores:
            market, replica = stores.engine("market"), stores.engine("replica")
            if stores.market.path is not None:
                target = str(stores.market.path)
            else:
                target = market.url.set(drivername="postgresql").render_as_string(
                    hide_password=False
                )
                with market.begin() as connection:
                    connection.exec_driver_sql(
                        "CREATE TABLE time_series_live PARTITION OF time_series "
                        "FOR VALUES FROM (1600000000000) TO (1700000000000)"
                    )
            processes.append(
                subprocess.Popen([sys.executable, "-c", WRITER, target, str(rate), backend])
            )
            program = Path(sys.executable).parent / "cryptotrading"
            processes.append(
                subprocess.Popen(
                    [str(program), "replicate", "--follow", "--interval", "1"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                )
            )
            time.sleep(3)  # warm-up
            lags = []
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                source, copied = _newest(market), _newest(replica)
                lags.append(max(0, source - copied) / 1000)
                time.sleep(0.25)
            written = _newest(market)
            if any(process.poll() is not None for process in processes):
                raise SystemExit(f"[{backend}] the writer or the replicator died")
        lags.sort()
        p95 = lags[int(len(lags) * 0.95) - 1]
        print(
            f"[{backend}] replication lag at {rate} rows/s over {seconds:.0f} s "
            f"({len(lags)} samples, interval 1 s): median {statistics.median(lags):.2f} s, "
            f"p95 {p95:.2f} s, max {lags[-1]:.2f} s "
            f"({statistics.median(lags) / 1.0:.2f}x / {p95:.2f}x the polling interval)"
        )
        del written
    finally:
        for process in processes:
            process.kill()
            process.wait()
        drop_databases(created)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--lag-seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=2_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--skip-backup", action="store_true")
    parser.add_argument("--skip-lag", action="store_true")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    workdir = Path(tempfile.mkdtemp(prefix="bench-ops-"))
    try:
        for backend in backends:
            if not args.skip_backup:
                bench_backup(backend, args.rows, workdir)
            if not args.skip_lag:
                bench_lag(backend, args.lag_seconds, args.rate, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
