"""Point-in-time recovery of a SQLite application store after N changes.

    .venv/bin/python bench/bench_pitr_sqlite.py [--changes 100000] [--json]

A fresh store in a temporary directory: a full backup, then *changes* inserts,
updates and deletes of ``system_metrics`` through plain SQL in
transactions of 100 (the capture triggers log each one), a noted time, more changes,
then ``restore_to`` the noted time. Printed: the restore's seconds per phase and in
all, the entries replayed, and for comparison the seconds a plain ``backup restore``
of the base takes (the cost of the replay is the difference).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptotrading.ops import backup, pitr_sqlite
from cryptotrading.ops.lifecycle import initialize
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores

BATCH = 100


def workload(stores: Stores, changes: int, seed: int, first_id: int) -> float:
    """*changes* plain-SQL changes (about 60% inserts, 30% updates, 10% deletes)."""
    rng = random.Random(seed)
    engine = stores.engine("app")
    began = time.perf_counter()
    next_id = first_id
    done = 0
    while done < changes:
        with engine.begin() as connection:
            for _ in range(min(BATCH, changes - done)):
                roll = rng.random()
                if roll < 0.6 or next_id == first_id:
                    connection.exec_driver_sql(
                        "INSERT INTO system_metrics (id, metric_name, value, recorded_at)"
                        " VALUES (?, ?, ?, '2026-12-01 00:00:00')",
                        (next_id, f"m{next_id % 50}", rng.random() * 1e6),
                    )
                    next_id += 1
                elif roll < 0.9:
                    connection.exec_driver_sql(
                        "UPDATE system_metrics SET value = ? WHERE id = ?",
                        (rng.random(), rng.randrange(first_id, next_id)),
                    )
                else:
                    connection.exec_driver_sql(
                        "DELETE FROM system_metrics WHERE id = ?",
                        (rng.randrange(first_id, next_id),),
                    )
                done += 1
    return time.perf_counter() - began


def run(changes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-pitr-sqlite-") as scratch:
        settings = Settings(data_dir=Path(scratch) / "data", layout="two")
        with Stores(settings) as stores:
            initialize(stores)
            base = backup.create_backup(stores, "app")
            write_seconds = workload(stores, changes, 1, 1)
            time.sleep(0.01)
            target = datetime.now(UTC)
            time.sleep(0.01)
            workload(stores, changes // 10, 2, 10_000_000)
        with Stores(settings) as stores:
            result = pitr_sqlite.restore_to(stores, "app", None, target)
        with Stores(settings) as stores:
            started = time.perf_counter()
            backup.restore_backup(stores, base.id)
            plain_restore = time.perf_counter() - started
        return {
            "changes": changes,
            "write_seconds": round(write_seconds, 2),
            "changes_per_second": round(changes / write_seconds),
            "pitr_seconds": result.seconds,
            "phases": result.phases,
            "entries_replayed": result.changes_replayed,
            "plain_restore_seconds": round(plain_restore, 3),
            "system_metrics_rows": result.row_counts.get("system_metrics"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = run(args.changes)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"SQLite PITR after {figures['changes']:,} changes")
    print(f"  workload: {figures['write_seconds']} s ({figures['changes_per_second']:,} changes/s)")
    print(f"  restore --to: {figures['pitr_seconds']} s, phases {figures['phases']}")
    print(f"  entries replayed: {figures['entries_replayed']:,}")
    print(f"  plain restore of the base backup: {figures['plain_restore_seconds']} s")


if __name__ == "__main__":
    main()
