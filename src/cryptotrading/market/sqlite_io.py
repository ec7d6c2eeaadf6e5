"""The SQLite fast path: multi-row upserts and fetches on the raw ``sqlite3`` driver.

Constants (symbol, frequency, exchange, ingested_at) are bound once per statement as
``?1..?4``; each candle adds six parameters. Timestamps are passed as floats and
stored as integers (INTEGER affinity converts integral reals), which lets one
``tolist()`` of a float matrix build every parameter.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np
from sqlalchemy import Engine

from cryptotrading.errors import StoreError
from cryptotrading.market import native_read
from cryptotrading.market.backend import BatchMark, series_filters
from cryptotrading.market.candles import CANDLE_DTYPE, COLUMNS, Candles, unstored
from cryptotrading.market.timeframes import parse_timeframe
from cryptotrading.migrations import capture

log = logging.getLogger(__name__)
ROWS_PER_STATEMENT = 500
_SELECT = "SELECT timestamp, open, high, low, close, volume FROM time_series"
_UPSERT = (
    " ON CONFLICT (symbol, frequency, timestamp, exchange) DO UPDATE SET"
    " open = excluded.open, high = excluded.high, low = excluded.low,"
    " close = excluded.close, volume = excluded.volume, ingested_at = excluded.ingested_at"
    " WHERE time_series.open IS NOT excluded.open OR time_series.high IS NOT excluded.high"
    " OR time_series.low IS NOT excluded.low OR time_series.close IS NOT excluded.close"
    " OR time_series.volume IS NOT excluded.volume"
)


@cache
def _insert_sql(rows: int) -> str:
    values = ",".join(
        "(?1,?2,?{},?3,?{},?{},?{},?{},?{},?4)".format(*range(5 + 6 * i, 11 + 6 * i))
        for i in range(rows)
    )
    return (
        "INSERT INTO time_series (symbol, frequency, timestamp, exchange, open, high, low,"
        f" close, volume, ingested_at) VALUES {values}{_UPSERT}"
    )


def write(
    conn: sqlite3.Connection,
    symbol: str,
    frequency: str,
    exchange: str,
    candles: Candles,
    ingested_at: int,
) -> int:
    """Upsert *candles* (inside the caller's write transaction, before it has written
    anything); returns rows changed. The stored candles of the range are read first
    and only rows that are new or differ value for value are written, so re-ingesting
    known candles costs a read, not a write, and no change is ever skipped."""
    first, last = int(candles.timestamp[0]), int(candles.timestamp[-1])
    stored = read(conn, symbol, frequency, exchange, first, last + 1, native=True, unwritten=True)
    fresh, _all_new = unstored(stored, candles)
    if len(fresh) == 0:
        return 0
    matrix = np.column_stack([np.asarray(getattr(fresh, name), np.float64) for name in COLUMNS])
    flat: list[float] = matrix.ravel().tolist()
    head: list[Any] = [symbol, frequency, exchange, ingested_at]
    step = ROWS_PER_STATEMENT * 6
    full = _insert_sql(ROWS_PER_STATEMENT)
    first_fresh, last_fresh = int(fresh.timestamp[0]), int(fresh.timestamp[-1])
    # One change-log range per run of changed candles instead of a trigger row each.
    spans = changed_runs(candles.timestamp, fresh.timestamp)
    with capture.series_batch(conn, symbol, frequency, exchange, first_fresh, last_fresh, spans):
        before = conn.total_changes
        for begin in range(0, len(flat), step):
            chunk = flat[begin : begin + step]
            sql = full if len(chunk) == step else _insert_sql(len(chunk) // 6)
            conn.execute(sql, head + chunk)
        changed = conn.total_changes - before
    return changed


#: More runs than this are logged as one range (a re-copy beats a huge log).
MAX_RUNS = 1_000


def changed_runs(timestamps: np.ndarray, changed: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) timestamps of each run of consecutive written candles that
    changed: *changed* is a sorted subset of the sorted *timestamps*."""
    mask = np.isin(timestamps, changed)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.view(np.int8), [0]))))
    starts, ends = edges[0::2], edges[1::2] - 1
    if len(starts) > MAX_RUNS:
        return [(int(changed[0]), int(changed[-1]))]
    return [(int(timestamps[a]), int(timestamps[b])) for a, b in zip(starts, ends, strict=True)]


def read(
    conn: sqlite3.Connection,
    symbol: str,
    frequency: str,
    exchange: str | None,
    start: int | None,
    end: int | None,
    *,
    native: bool = False,
    unwritten: bool = False,
) -> Candles:
    """Candles in ``[start, end)`` ordered by timestamp (all exchanges when None); with
    *native*, large reads take :mod:`cryptotrading.market.native_read`. *unwritten*
    says that the transaction open on *conn* holds the write lock but has written
    nothing yet, so another connection's snapshot is exactly what *conn* sees."""
    where, params = _where(symbol, frequency, exchange, start, end)
    sql = f"{_SELECT} WHERE {where} ORDER BY timestamp"
    native_target = native and _native_target(
        conn, symbol, frequency, exchange, start, end, unwritten=unwritten
    )
    if native_target:
        path, expected = native_target
        try:
            return native_read.read(
                path, sql, params, busy_timeout_ms=_busy_timeout(conn), expected=expected
            )
        except StoreError as exc:  # e.g. a file this process may open only through conn
            log.warning("native read failed, reading through sqlite3 instead: %s", exc)
    # Streaming the cursor into numpy skips the intermediate list of fetchall().
    return Candles.from_records(np.fromiter(conn.execute(sql, params), CANDLE_DTYPE))


def _native_target(
    conn: sqlite3.Connection,
    symbol: str,
    frequency: str,
    exchange: str | None,
    start: int | None,
    end: int | None,
    *,
    unwritten: bool = False,
) -> tuple[str, int] | None:
    """(database file, expected rows) when this read should take the native path: a
    file database, no uncommitted write on *conn* (it would be invisible to another
    connection) and at least ``native_read.MIN_ROWS`` candles expected from the
    stored span (two index probes)."""
    if conn.in_transaction and not unwritten:
        return None
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    if not path:
        return None
    where, params = _where(symbol, frequency, exchange, None, None)
    span = (
        f"SELECT (SELECT MIN(timestamp) FROM time_series WHERE {where}),"
        f" (SELECT MAX(timestamp) FROM time_series WHERE {where})"
    )
    first, last = conn.execute(span, params + params).fetchone()
    if first is None:
        return None
    first = first if start is None else max(first, start)
    last = last if end is None else min(last, end - 1)
    expected = (last - first) // parse_timeframe(frequency).ms + 1
    # available() loads numba (~0.3 s once per process): only for reads that need it.
    if expected < native_read.MIN_ROWS or not native_read.available():
        return None
    return path, expected


def _busy_timeout(conn: sqlite3.Connection) -> int:
    timeout: int = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    return timeout


def _where(
    symbol: str, frequency: str, exchange: str | None, start: int | None, end: int | None
) -> tuple[str, list[Any]]:
    clauses = ["symbol = ?", "frequency = ?"]
    params: list[Any] = [symbol, frequency]
    if exchange is not None:
        clauses.append("exchange = ?")
        params.append(exchange)
    if start is not None:
        clauses.append("timestamp >= ?")
        params.append(start)
    if end is not None:
        clauses.append("timestamp < ?")
        params.append(end)
    return " AND ".join(clauses), params


def latest(
    conn: sqlite3.Connection,
    symbols: Sequence[str],
    frequency: str | None,
    exchange: str | None,
) -> list[tuple[Any, ...]]:
    """Newest candle per symbol, one index probe each (``ORDER BY ... DESC LIMIT 1``)."""
    extra, params = series_filters("?", frequency, exchange)
    sql = (
        "SELECT symbol, frequency, exchange, timestamp, open, high, low, close, volume"
        f" FROM time_series WHERE symbol = ?{extra} ORDER BY timestamp DESC LIMIT 1"
    )
    found = (conn.execute(sql, [symbol, *params]).fetchone() for symbol in symbols)
    return [row for row in found if row is not None]


def frequencies(conn: sqlite3.Connection, symbol: str) -> list[str]:
    """Distinct frequencies stored for *symbol* (a skip-scan over the primary key)."""
    found: list[str] = []
    sql = (
        "SELECT frequency FROM time_series WHERE symbol = ? AND frequency > ?"
        " ORDER BY symbol, frequency LIMIT 1"
    )
    while (row := conn.execute(sql, (symbol, found[-1] if found else "")).fetchone()) is not None:
        found.append(row[0])
    return found


def exchanges(conn: sqlite3.Connection, symbol: str, frequency: str) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT exchange FROM time_series WHERE symbol = ? AND frequency = ?",
        (symbol, frequency),
    ).fetchall()
    return sorted(row[0] for row in rows)


def series(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """(symbol, frequency, exchange, rows, first, last) of every stored series."""
    return list(
        conn.execute(
            "SELECT symbol, frequency, exchange, COUNT(*), MIN(timestamp), MAX(timestamp)"
            " FROM time_series GROUP BY symbol, frequency, exchange ORDER BY 1, 2, 3"
        )
    )


def record_batch(
    conn: sqlite3.Connection,
    job_id: str,
    number: int,
    rows: int,
    changed: int,
    ingested_at: int,
) -> None:
    """Record one committed batch of *job_id* (inside the candles' transaction)."""
    conn.execute(
        "INSERT INTO ingestion_batches (job_id, batch, rows, changed, ingested_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id, batch) DO UPDATE SET"
        " rows = excluded.rows, changed = excluded.changed, ingested_at = excluded.ingested_at",
        (job_id, number, rows, changed, ingested_at),
    )


def batch_totals(conn: sqlite3.Connection, job_id: str) -> tuple[int, int]:
    """(batches, candles) recorded for *job_id*."""
    row = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(rows), 0) FROM ingestion_batches WHERE job_id = ?",
        (job_id,),
    ).fetchone()
    return int(row[0]), int(row[1])


def partitions(conn: sqlite3.Connection) -> list[str]:
    """SQLite keeps ``time_series`` in one table: no partitions."""
    return []


class SqliteCandles:
    """:class:`~cryptotrading.market.backend.CandleBackend` on SQLite: ``BEGIN
    IMMEDIATE`` transactions on the raw ``sqlite3`` connection; with *native*, large
    reads take :mod:`cryptotrading.market.native_read`."""

    def __init__(self, engine: Engine, *, native: bool) -> None:
        self.engine = engine
        self.native = native

    @contextmanager
    def connection(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        pooled = self.engine.raw_connection()
        conn: sqlite3.Connection = pooled.driver_connection  # type: ignore[assignment]
        try:
            if write:
                conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if conn.in_transaction:
                conn.execute("COMMIT")
        finally:
            pooled.close()

    def write(
        self,
        symbol: str,
        frequency: str,
        exchange: str,
        candles: Candles,
        ingested_at: int,
        batch: BatchMark | None,
    ) -> int:
        with self.connection(write=True) as conn:
            changed = write(conn, symbol, frequency, exchange, candles, ingested_at)
            if batch is not None:
                record_batch(conn, batch.job_id, batch.number, len(candles), changed, ingested_at)
        return changed

    def read(
        self,
        conn: sqlite3.Connection,
        symbol: str,
        frequency: str,
        exchange: str | None,
        start: int | None,
        end: int | None,
    ) -> Candles:
        return read(conn, symbol, frequency, exchange, start, end, native=self.native)

    latest = staticmethod(latest)
    frequencies = staticmethod(frequencies)
    exchanges = staticmethod(exchanges)
    series = staticmethod(series)
    partitions = staticmethod(partitions)
    batch_totals = staticmethod(batch_totals)
