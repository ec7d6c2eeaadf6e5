"""Health readings of one store (sizes, rows, partitions, reclaimable space) and of
the host."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from cryptotrading.common.views import AsDict
from cryptotrading.db.engine import READ_ONLY
from cryptotrading.db.session import translate_errors
from cryptotrading.errors import CryptotradingError
from cryptotrading.models import lineage_tables
from cryptotrading.ops.maintenance import store_size
from cryptotrading.ops.reclaim import read_space
from cryptotrading.stores import Store, Stores


@dataclass
class TableHealth(AsDict):
    name: str
    rows: int
    bytes: int | None
    growth_rows_per_day: float | None = None


@dataclass
class PartitionHealth(AsDict):
    """One partition of ``time_series`` on PostgreSQL."""

    name: str
    bounds: str
    rows: int
    bytes: int


@dataclass
class StoreHealth:
    name: str
    backend: str
    location: str
    status: str
    size_bytes: int | None
    response_ms: float
    growth_bytes_per_day: float | None = None
    tables: list[TableHealth] = field(default_factory=list)
    partitions: list[PartitionHealth] = field(default_factory=list)
    error: str | None = None
    #: Free space a reclaim would give back: SQLite free pages, PostgreSQL dead rows.
    reclaimable_bytes: int | None = None
    #: SQLite: free pages / pages; PostgreSQL: dead rows / rows of the store's tables.
    free_ratio: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k not in ("tables", "partitions")},
            "tables": [t.as_dict() for t in self.tables],
            "partitions": [p.as_dict() for p in self.partitions],
        }


@dataclass
class HostHealth(AsDict):
    cpu_percent: float
    memory_percent: float
    disk_path: str
    disk_free_bytes: int
    disk_free_percent: float


def _table_bytes_sqlite(connection: Connection) -> dict[str, int]:
    """Bytes per table including its indexes (the ``dbstat`` virtual table)."""
    try:
        rows = connection.exec_driver_sql(
            "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d "
            "LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1"
        ).fetchall()
    except DBAPIError:  # SQLite built without dbstat: sizes unknown
        return {}
    return {str(name): int(size) for name, size in rows}


def _table_bytes_postgresql(connection: Connection, tables: list[str]) -> dict[str, int]:
    """Bytes per table with indexes and TOAST, partitions summed into their parent."""
    sizes = {}
    for table in tables:
        size = connection.exec_driver_sql(
            "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) "
            "FROM pg_partition_tree(to_regclass(%(t)s))",
            {"t": table},
        ).scalar()
        sizes[table] = int(size or 0)
    return sizes


def _partitions(connection: Connection) -> list[PartitionHealth]:
    """The partitions of ``time_series`` (monthly ``time_series_pYYYYMM`` and the
    default) with their bounds, exact row counts and sizes."""
    rows = connection.exec_driver_sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), pg_total_relation_size(c.oid) "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass('time_series') ORDER BY c.relname"
    ).fetchall()
    result = []
    for name, bounds, size in rows:
        count = connection.exec_driver_sql(f'SELECT count(*) FROM "{name}"').scalar()
        result.append(PartitionHealth(str(name), str(bounds), int(count or 0), int(size or 0)))
    return result


def store_health(stores: Stores, store: Store) -> StoreHealth:
    location = str(store.path) if store.path is not None else store.display_url
    started = time.perf_counter()
    try:
        engine = stores.engine(store)
        with translate_errors(store.name), engine.connect() as connection:
            connection = connection.execution_options(**{READ_ONLY: True})
            connection.exec_driver_sql("SELECT 1")
            response_ms = (time.perf_counter() - started) * 1000
            names = [t.name for lineage in store.lineages for t in lineage_tables(lineage)]
            counts = {
                name: int(
                    connection.exec_driver_sql(f'SELECT count(*) FROM "{name}"').scalar() or 0
                )
                for name in names
            }
            if engine.dialect.name == "sqlite":
                sizes = _table_bytes_sqlite(connection)
                partitions: list[PartitionHealth] = []
            else:
                sizes = _table_bytes_postgresql(connection, names)
                partitions = _partitions(connection) if "time_series" in names else []
            free = read_space(connection, store)
        size = store_size(engine, store)
    except (CryptotradingError, OSError) as exc:  # an unreachable store is a finding
        message = getattr(exc, "message", None) or str(exc).splitlines()[0]
        return StoreHealth(store.name, store.backend, location, "down", None, 0.0, error=message)
    tables = [TableHealth(name, counts[name], sizes.get(name)) for name in sorted(names)]
    return StoreHealth(
        store.name,
        store.backend,
        location,
        "ok",
        size,
        round(response_ms, 3),
        None,
        tables,
        partitions,
        reclaimable_bytes=free.reclaimable_bytes,
        free_ratio=free.free_ratio,
    )


def host_health(path: Path) -> HostHealth:
    probe = path if path.exists() else Path.cwd()
    usage = shutil.disk_usage(probe)
    return HostHealth(
        cpu_percent=float(psutil.cpu_percent(interval=0.1)),
        memory_percent=float(psutil.virtual_memory().percent),
        disk_path=str(probe),
        disk_free_bytes=int(usage.free),
        disk_free_percent=round(100.0 * usage.free / usage.total, 2) if usage.total else 0.0,
    )
