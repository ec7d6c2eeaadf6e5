"""``db vacuum`` and ``db analyze``: SQLite's commands or PostgreSQL's equivalents.

``db vacuum`` on SQLite also sets the file's ``auto_vacuum`` mode to the setting
``sqlite_auto_vacuum`` (default incremental; the mode changes only when a file is
rebuilt), so later reclaims need no rebuild (see :mod:`cryptotrading.ops.reclaim`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from cryptotrading.common.views import AsDict
from cryptotrading.db.session import translate_errors
from cryptotrading.models import lineage_tables
from cryptotrading.stores import Store, Stores


@dataclass(frozen=True)
class MaintenanceResult(AsDict):
    store: str
    operation: str
    seconds: float
    size_before: int | None
    size_after: int | None


def vacuum(stores: Stores) -> list[MaintenanceResult]:
    """Rebuild every store to reclaim free pages (SQLite VACUUM, PostgreSQL VACUUM)."""
    return [_run(stores, store, "vacuum") for store in stores]


def analyze(stores: Stores) -> list[MaintenanceResult]:
    """Refresh the query planner's statistics (ANALYZE; SQLite also PRAGMA optimize)."""
    return [_run(stores, store, "analyze") for store in stores]


def store_size(engine: Engine, store: Store) -> int | None:
    """Bytes on disk: the SQLite file (+ WAL), or pg_database_size."""
    if store.path is not None:
        wal = store.path.with_name(store.path.name + "-wal")
        return store.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    with translate_errors(store.name), engine.connect() as connection:
        size = connection.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    return int(size) if size is not None else None


def set_auto_vacuum(raw: Any, mode: str) -> None:
    """Set the ``auto_vacuum`` mode the next ``VACUUM`` of *raw*'s file gives it."""
    if mode not in ("none", "incremental"):
        raise ValueError(f"unknown auto_vacuum mode {mode!r}")
    raw.execute(f"PRAGMA auto_vacuum = {mode.upper()}")


def _run(stores: Stores, store: Store, operation: str) -> MaintenanceResult:
    engine = stores.engine(store)
    before = store_size(engine, store)
    started = time.perf_counter()
    with translate_errors(store.name):
        if engine.dialect.name == "sqlite":
            _sqlite(engine, operation, stores.settings.sqlite_auto_vacuum)
        else:
            _postgresql(engine, store, operation)
    seconds = time.perf_counter() - started
    return MaintenanceResult(store.name, operation, seconds, before, store_size(engine, store))


def _sqlite(engine: Engine, operation: str, auto_vacuum: str) -> None:
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        # The connection is in autocommit mode (isolation_level None): VACUUM cannot
        # run inside a transaction.
        if operation == "vacuum":
            set_auto_vacuum(raw, auto_vacuum)
            raw.execute("VACUUM")
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            raw.execute("ANALYZE")
            raw.execute("PRAGMA optimize")


def _postgresql(engine: Engine, store: Store, operation: str) -> None:
    tables = [table.name for lineage in store.lineages for table in lineage_tables(lineage)]
    statement = "VACUUM" if operation == "vacuum" else "ANALYZE"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"{statement} {', '.join(tables)}")
