"""PostgreSQL point-in-time recovery of a 1M-candle market store (pgBackRest).

    .venv/bin/python bench/bench_pitr.py [--rows 1000000]

Runs on the dedicated PITR cluster (``CRYPTOTRADING_TEST_PG_PITR_URL``, default
``postgresql+psycopg://postgres@127.0.0.1:5434/postgres``; ``.ci/setup.d/pitr-cluster.sh``
creates it) as root, with a throw-away pgBackRest directory. Two figures:

1. **WAL replay**: the base backup is taken before the candles are loaded (COPY, 10
   symbols), a time is noted, some candles are deleted, then ``restore_to`` the noted
   time: the restore replays the WAL of the whole load.
2. **Fresh base**: a full backup after the load, a few writes, note, delete, restore:
   mostly the copy of the database (pg_dump + pg_restore + index build) and the swap.

Printed: seconds per phase and in all, WAL bytes replayed, rows restored.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from cryptotrading.ops import pitr_postgres
from cryptotrading.ops.lifecycle import initialize
from cryptotrading.ops.pitr_result import PitrResult
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores

PITR_URL = os.environ.get(
    "CRYPTOTRADING_TEST_PG_PITR_URL", "postgresql+psycopg://postgres@127.0.0.1:5434/postgres"
)
SYMBOLS = [f"SYM{n}/USDT" for n in range(10)]


def load(url: str, rows: int, start: int = 0) -> float:
    """*rows* 1m candles over the 10 symbols with COPY; returns seconds."""
    per_symbol = rows // len(SYMBOLS)
    began = time.perf_counter()
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS time_series_bench PARTITION OF time_series "
            "FOR VALUES FROM (1500000000000) TO (1700000000000)"
        )
        now = int(time.time() * 1000)
        with connection.cursor().copy(
            "COPY time_series (symbol, frequency, timestamp, exchange, open, high, low,"
            " close, volume, ingested_at) FROM STDIN"
        ) as copy:
            for symbol in SYMBOLS:
                for n in range(start, start + per_symbol):
                    price = 100.0 + (n % 1000) / 10
                    ts = 1_600_000_000_000 + n * 60_000
                    copy.write_row(
                        (symbol, "1m", ts, "bench", price, price + 1, price - 1, price, 10.0, now)
                    )
    return time.perf_counter() - began


def count(url: str) -> int:
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM time_series")).scalar() or 0)


def restore(settings: Settings, label: str) -> PitrResult:
    time.sleep(1.5)  # a base backup is usable from the second after it ended
    noted = datetime.now(UTC)
    time.sleep(0.3)
    engine = create_engine(str(settings.market_url), poolclass=NullPool)
    with engine.begin() as connection:  # a change after the noted time, to be undone
        connection.execute(text("DELETE FROM time_series WHERE symbol = 'SYM0/USDT'"))
    with Stores(settings) as stores:
        result = pitr_postgres.restore_to(stores, "market", None, noted)
    print(
        f"{label}: {result.seconds:.1f} s in all; phases {result.phases}; "
        f"WAL replayed {result.wal_bytes_replayed / 1e6:.0f} MB; "
        f"time_series rows {result.row_counts['time_series']:,}; base {result.base_backup}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ct-pitr-bench-"))
    data_root = Path(tempfile.mkdtemp(prefix="ct-pitr-bench-data-"))
    admin = create_engine(PITR_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    names = {store: f"bench_pitr_{store}_{uuid.uuid4().hex[:6]}" for store in ("app", "market")}
    try:
        with admin.connect() as connection:
            for name in names.values():
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        urls = {
            f"{store}_url": admin.url.set(database=name).render_as_string(hide_password=False)
            for store, name in names.items()
        }
        settings = Settings(
            data_dir=data_root / "data",
            layout="two",
            pgbackrest_dir=root,  # mkdtemp: private to root until setup hands it to postgres
            **urls,
        )  # type: ignore[arg-type]
        with Stores(settings) as stores:
            initialize(stores)
            setup = pitr_postgres.setup(stores, restart=True)
        assert setup.ready, setup
        seconds = load(urls["market_url"], args.rows)
        print(f"loaded {count(urls['market_url']):,} candles in {seconds:.1f} s")
        first = restore(settings, "1. base before the load (WAL replay of the load)")
        assert first.row_counts["time_series"] == args.rows // 10 * 10
        with Stores(settings) as stores:
            began = time.perf_counter()
            made = pitr_postgres.backup(stores, kind="weekly")
            print(f"full backup {made[0].label} in {time.perf_counter() - began:.1f} s")
        load(urls["market_url"], 1_000, start=args.rows)  # a few writes after the base
        second = restore(settings, "2. fresh full base")
        assert second.row_counts["time_series"] == args.rows // 10 * 10 + 1_000
    finally:
        with admin.connect() as connection:
            found = connection.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE 'bench_pitr_%'")
            ).all()
            for (name,) in found:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text("ALTER SYSTEM SET archive_command = 'true'"))
            connection.execute(text("SELECT pg_reload_conf()"))
        admin.dispose()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(data_root, ignore_errors=True)


if __name__ == "__main__":
    main()
