"""Reclaim: give the space of deleted rows back after archiving and retention.

SQLite keeps the pages of deleted rows in the file's free list: the file never
shrinks by itself (a market store whose every candle was archived keeps its full
size). Every SQLite file is brought to ``auto_vacuum = INCREMENTAL`` (the setting
``sqlite_auto_vacuum``) at its next ``VACUUM`` -- the mode is stored in the file and
changes only when the file is rebuilt. Then:

* a file in incremental mode with at least ``reclaim_min_bytes`` free gets
  ``PRAGMA incremental_vacuum``: the free pages are cut off the end of the file, no
  rebuild (milliseconds, one short write lock);
* a file without it is rebuilt by ``VACUUM`` when its free pages reach
  ``reclaim_free_ratio`` of the file (and ``reclaim_min_bytes``); that rebuild also
  switches it to incremental mode, so each file is rebuilt once.

``cryptotrading db vacuum`` switches the mode too. A file created by ``init``
switches at the first reclaim that finds enough free pages.

PostgreSQL reuses the space of dead rows after ``VACUUM``; a table whose dead rows
reach ``reclaim_free_ratio`` of its rows (per the statistics collector), or one named
by the caller (the tables an archive or a retention run just deleted from), gets
``VACUUM (ANALYZE)``, which also returns empty pages at the end of a table to the
file system.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from cryptotrading.common.views import AsDict
from cryptotrading.db.session import translate_errors
from cryptotrading.models import lineage_tables
from cryptotrading.ops.maintenance import set_auto_vacuum, store_size
from cryptotrading.settings import Settings
from cryptotrading.stores import Store, Stores

AUTO_VACUUM_MODES = {0: "none", 1: "full", 2: "incremental"}


@dataclass
class Space(AsDict):
    """Free space of one store: SQLite pages on the free list, or PostgreSQL's
    estimate of dead rows (bytes of each table in proportion to its dead rows)."""

    store: str
    backend: str
    size_bytes: int | None
    reclaimable_bytes: int
    free_ratio: float
    page_size: int | None = None
    pages: int | None = None
    free_pages: int | None = None
    auto_vacuum: str | None = None
    #: PostgreSQL: table -> (dead rows, live rows, estimated dead bytes).
    tables: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class ReclaimResult(AsDict):
    """What reclaim did to one store and how much space it gave back."""

    store: str
    action: str  # none, incremental_vacuum, vacuum, vacuum_analyze
    size_before: int | None
    size_after: int | None
    reclaimable_before: int
    reclaimable_after: int
    seconds: float
    auto_vacuum: str | None = None
    tables: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def bytes_reclaimed(self) -> int:
        if self.size_before is None or self.size_after is None:
            return 0
        return max(0, self.size_before - self.size_after)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "bytes_reclaimed": self.bytes_reclaimed}


# -- readings -------------------------------------------------------------------------


def _pragma(connection: Connection, name: str) -> int:
    return int(connection.exec_driver_sql(f"PRAGMA {name}").scalar() or 0)


def _sqlite_space(connection: Connection, store: Store) -> Space:
    page_size = _pragma(connection, "page_size")
    pages = _pragma(connection, "page_count")
    free = _pragma(connection, "freelist_count")
    mode = AUTO_VACUUM_MODES.get(_pragma(connection, "auto_vacuum"), "unknown")
    return Space(
        store.name,
        "sqlite",
        pages * page_size,
        free * page_size,
        round(free / pages, 4) if pages else 0.0,
        page_size,
        pages,
        free,
        mode,
    )


_DEAD_ROWS_SQL = """
SELECT coalesce(r.relname, s.relname) AS name,
       sum(s.n_dead_tup)::bigint, sum(s.n_live_tup)::bigint,
       sum(pg_relation_size(s.relid) * s.n_dead_tup
           / greatest(s.n_dead_tup + s.n_live_tup, 1))::bigint
FROM pg_stat_user_tables s
LEFT JOIN pg_class r ON r.oid = pg_partition_root(s.relid) AND r.oid <> s.relid
WHERE s.schemaname = current_schema()
GROUP BY 1
"""


def _postgresql_space(connection: Connection, store: Store) -> Space:
    ours = {table.name for lineage in store.lineages for table in lineage_tables(lineage)}
    tables = {
        str(name): {
            "dead_rows": int(dead or 0),
            "live_rows": int(live or 0),
            "bytes": int(size or 0),
        }
        for name, dead, live, size in connection.exec_driver_sql(_DEAD_ROWS_SQL)
        if name in ours
    }
    dead = sum(t["dead_rows"] for t in tables.values())
    live = sum(t["live_rows"] for t in tables.values())
    size = connection.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    return Space(
        store.name,
        "postgresql",
        int(size or 0),
        sum(t["bytes"] for t in tables.values()),
        round(dead / (dead + live), 4) if dead + live else 0.0,
        tables={name: t for name, t in tables.items() if t["dead_rows"]},
    )


def read_space(connection: Connection, store: Store) -> Space:
    """The free space of *store* read through *connection* (read-only)."""
    if connection.dialect.name == "sqlite":
        return _sqlite_space(connection, store)
    return _postgresql_space(connection, store)


def space(stores: Stores, store: Store) -> Space:
    with translate_errors(store.name), stores.engine(store).connect() as connection:
        return read_space(connection, store)


# -- reclaiming -----------------------------------------------------------------------


def _sqlite_reclaim(engine: Engine, store: Store, settings: Settings, force: bool) -> ReclaimResult:
    before = space_of(engine, store)
    started = time.perf_counter()
    size_before = store_size(engine, store)
    action, reason = "none", "free space below the thresholds"
    free = before.reclaimable_bytes
    enough = free > 0 and free >= settings.reclaim_min_bytes
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        # autocommit connection (isolation_level None): VACUUM cannot run in a transaction
        if before.auto_vacuum == "incremental" and (enough or (force and before.free_pages)):
            # executescript steps the pragma to the end (execute() frees one page)
            raw.executescript("PRAGMA incremental_vacuum")
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            action, reason = "incremental_vacuum", f"{before.free_pages} free pages"
        elif force or (enough and before.free_ratio >= settings.reclaim_free_ratio):
            set_auto_vacuum(raw, settings.sqlite_auto_vacuum)
            raw.execute("VACUUM")
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            action = "vacuum"
            reason = (
                "forced"
                if force
                else f"{before.free_ratio:.0%} of the file free "
                f"(threshold {settings.reclaim_free_ratio:.0%})"
            )
    after = space_of(engine, store)
    return ReclaimResult(
        store.name,
        action,
        size_before,
        store_size(engine, store),
        before.reclaimable_bytes,
        after.reclaimable_bytes,
        round(time.perf_counter() - started, 3),
        after.auto_vacuum,
        reason=reason,
    )


def _postgresql_reclaim(
    engine: Engine, store: Store, settings: Settings, tables: list[str] | None, force: bool
) -> ReclaimResult:
    before = space_of(engine, store)
    started = time.perf_counter()
    size_before = store_size(engine, store)
    ours = [table.name for lineage in store.lineages for table in lineage_tables(lineage)]
    if force:
        chosen, reason = ours, "forced"
    elif tables is not None:
        chosen, reason = [t for t in tables if t in ours], "tables just deleted from"
    else:
        chosen = [
            name
            for name, reading in before.tables.items()
            if reading["bytes"] >= settings.reclaim_min_bytes
            and reading["dead_rows"]
            >= settings.reclaim_free_ratio * (reading["dead_rows"] + reading["live_rows"])
        ]
        reason = "dead rows over the thresholds" if chosen else "dead rows below the thresholds"
    if chosen:
        names = ", ".join(f'"{name}"' for name in chosen)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f"VACUUM (ANALYZE) {names}")
    after = space_of(engine, store)
    return ReclaimResult(
        store.name,
        "vacuum_analyze" if chosen else "none",
        size_before,
        store_size(engine, store),
        before.reclaimable_bytes,
        after.reclaimable_bytes,
        round(time.perf_counter() - started, 3),
        tables=chosen,
        reason=reason,
    )


def space_of(engine: Engine, store: Store) -> Space:
    with engine.connect() as connection:
        return read_space(connection, store)


def reclaim_store(
    stores: Stores, store: Store, *, tables: list[str] | None = None, force: bool = False
) -> ReclaimResult:
    """Reclaim the free space of one store when it passes the thresholds (always with
    *force*; on PostgreSQL, *tables* are vacuumed whatever their statistics say)."""
    engine = stores.engine(store)
    with translate_errors(store.name):
        if engine.dialect.name == "sqlite":
            return _sqlite_reclaim(engine, store, stores.settings, force)
        return _postgresql_reclaim(engine, store, stores.settings, tables, force)


def reclaim(stores: Stores, *, force: bool = False) -> list[ReclaimResult]:
    """Reclaim the free space of every store that passes the thresholds."""
    return [reclaim_store(stores, store, force=force) for store in stores]
