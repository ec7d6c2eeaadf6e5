"""The SQLite fast path: multi-row upserts and fetches on the raw ``sqlite3`` driver.

Constants (symbol, frequency, exchange, ingested_at) are bound once per statement as
``?1..?4``; each candle adds six parameters. Timestamps are passed as floats and
stored as integers (INTEGER affinity converts integral reals), which lets one
``tolist()`` of a float matrix build every parameter.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from cryptotrading.errors import StoreError
from cryptotrading.market import native_read
from cryptotrading.market.candles import CANDLE_DTYPE, VALUE_COLUMNS, Candles
from cryptotrading.market.timeframes import parse_timeframe

log = logging.getLogger(__name__)
ROWS_PER_STATEMENT = 500
#: Candles per checksum comparison: identical re-ingests skip whole chunks.
CHECK_ROWS = 10_000
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
    """Upsert *candles* (inside the caller's transaction); returns rows changed.
    Chunks whose stored copy is identical are skipped without writing."""
    changed = 0
    for begin in range(0, len(candles), CHECK_ROWS):
        chunk = candles.slice(begin, begin + CHECK_ROWS)
        if not _already_stored(conn, symbol, frequency, exchange, chunk):
            changed += _upsert(conn, symbol, frequency, exchange, chunk, ingested_at)
    return changed


def _checksums(candles: Candles) -> tuple[Any, ...]:
    """Count, timestamp sum and position-weighted value sums, added up in timestamp
    order exactly as SQLite's ``sum()`` does (sequential float64 additions)."""
    ts = candles.timestamp
    weight = ((ts - ts[0]) // 1000 + 1).astype(np.float64)
    sums = [float(np.add.accumulate(getattr(candles, name) * weight)[-1]) for name in VALUE_COLUMNS]
    return (len(ts), int(ts.sum()), *sums)


_CHECKSUM_SQL = (
    "SELECT COUNT(*), SUM(timestamp)"
    + "".join(f", SUM({name} * ((timestamp - ?5) / 1000 + 1))" for name in VALUE_COLUMNS)
    + " FROM time_series WHERE symbol = ?1 AND frequency = ?2 AND exchange = ?3"
    " AND timestamp >= ?5 AND timestamp <= ?4"
)


def _already_stored(
    conn: sqlite3.Connection, symbol: str, frequency: str, exchange: str, candles: Candles
) -> bool:
    """True when the stored candles of this range equal *candles* (same checksums,
    computed in C without fetching rows). A mismatch -- even one caused only by a
    different float summation in some SQLite version -- just means an upsert."""
    first, last = int(candles.timestamp[0]), int(candles.timestamp[-1])
    row = conn.execute(_CHECKSUM_SQL, (symbol, frequency, exchange, last, first)).fetchone()
    if row is None or row[0] != len(candles):
        return False
    return tuple(row) == _checksums(candles)


def _upsert(
    conn: sqlite3.Connection,
    symbol: str,
    frequency: str,
    exchange: str,
    candles: Candles,
    ingested_at: int,
) -> int:
    matrix = np.column_stack(
        (
            candles.timestamp.astype(np.float64),
            candles.open,
            candles.high,
            candles.low,
            candles.close,
            candles.volume,
        )
    )
    flat: list[float] = matrix.ravel().tolist()
    before = conn.total_changes
    head: list[Any] = [symbol, frequency, exchange, ingested_at]
    step = ROWS_PER_STATEMENT * 6
    full = _insert_sql(ROWS_PER_STATEMENT)
    for begin in range(0, len(flat), step):
        chunk = flat[begin : begin + step]
        sql = full if len(chunk) == step else _insert_sql(len(chunk) // 6)
        conn.execute(sql, head + chunk)
    return conn.total_changes - before


def read(
    conn: sqlite3.Connection,
    symbol: str,
    frequency: str,
    exchange: str | None,
    start: int | None,
    end: int | None,
    *,
    native: bool = False,
) -> Candles:
    """Candles in ``[start, end)`` ordered by timestamp (all exchanges when None); with
    *native*, large reads take :mod:`cryptotrading.market.native_read`."""
    where, params = _where(symbol, frequency, exchange, start, end)
    sql = f"{_SELECT} WHERE {where} ORDER BY timestamp"
    native_target = native and _native_target(conn, symbol, frequency, exchange, start, end)
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
) -> tuple[str, int] | None:
    """(database file, expected rows) when this read should take the native path: a
    file database, no transaction open on *conn* (its uncommitted writes would be
    invisible to another connection) and at least ``native_read.MIN_ROWS`` candles
    expected from the stored span (two index probes)."""
    if conn.in_transaction:
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
    extra, params = "", []
    if frequency is not None:
        extra += " AND frequency = ?"
        params.append(frequency)
    if exchange is not None:
        extra += " AND exchange = ?"
        params.append(exchange)
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
