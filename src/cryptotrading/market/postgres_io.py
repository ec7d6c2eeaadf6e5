"""The PostgreSQL fast path: binary ``COPY`` in and out, built and parsed with numpy.

Writes COPY the candles into a session-local staging table, then upsert them into
``time_series`` with one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE``
the values differ. ``time_series`` is ``PARTITION BY RANGE (timestamp)``: a monthly
partition ``time_series_pYYYYMM`` is created for every month that receives data
(rows of that month already in ``time_series_default`` are moved into it, in the
same transaction, under an advisory lock).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from sqlalchemy import Engine

from cryptotrading.market.backend import BatchMark, series_filters
from cryptotrading.market.candles import COLUMNS, Candles, unstored
from cryptotrading.migrations import capture

_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
_ROW_DTYPE = np.dtype(
    [("fields", ">i2")]
    + [
        item
        for name in COLUMNS
        for item in ((f"len_{name}", ">i4"), (name, ">f8" if name != "timestamp" else ">i8"))
    ]
)
TABLE_COLUMNS = (
    *("symbol", "frequency", "timestamp", "exchange"),
    *("open", "high", "low", "close", "volume", "ingested_at"),
)
_LOCK_KEY = 0x7453_5041  # advisory lock serialising partition creation
_MONTH_NAME = "time_series_p{:04d}{:02d}"


def _copy_payload(candles: Candles) -> bytes:
    rows = np.empty(len(candles), _ROW_DTYPE)
    rows["fields"] = len(COLUMNS)
    for name in COLUMNS:
        rows[f"len_{name}"] = 8
        rows[name] = getattr(candles, name)
    return _HEADER + rows.tobytes() + _TRAILER


def _full_row_payload(
    symbol: str, frequency: str, exchange: str, candles: Candles, ingested_at: int
) -> bytes:
    """Binary COPY rows of every ``time_series`` column (constants repeated)."""
    texts = {
        "symbol": symbol.encode(),
        "frequency": frequency.encode(),
        "exchange": exchange.encode(),
    }
    layout: list[tuple[str, str]] = [("fields", ">i2")]
    for name in TABLE_COLUMNS:
        layout.append((f"len_{name}", ">i4"))
        if name in texts:
            if texts[name]:
                layout.append((name, f"S{len(texts[name])}"))
        else:
            layout.append((name, ">i8" if name in ("timestamp", "ingested_at") else ">f8"))
    rows = np.empty(len(candles), np.dtype(layout))
    rows["fields"] = len(TABLE_COLUMNS)
    for name in TABLE_COLUMNS:
        if name in texts:
            rows[f"len_{name}"] = len(texts[name])
            if texts[name]:
                rows[name] = texts[name]
        else:
            rows[f"len_{name}"] = 8
            rows[name] = ingested_at if name == "ingested_at" else getattr(candles, name)
    return _HEADER + rows.tobytes() + _TRAILER


def insert_new(
    conn: psycopg.Connection[Any],
    symbol: str,
    frequency: str,
    exchange: str,
    candles: Candles,
    ingested_at: int,
) -> int:
    """COPY candles whose keys are not stored straight into ``time_series``. If another
    writer stored some of them meanwhile, fall back to :func:`write` (a savepoint keeps
    the transaction usable)."""
    payload = _full_row_payload(symbol, frequency, exchange, candles, ingested_at)
    columns = ", ".join(TABLE_COLUMNS)
    try:
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(f"COPY time_series ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.write(payload)
    except psycopg.errors.UniqueViolation:
        return write(conn, symbol, frequency, exchange, candles, ingested_at)
    return len(candles)


def write(
    conn: psycopg.Connection[Any],
    symbol: str,
    frequency: str,
    exchange: str,
    candles: Candles,
    ingested_at: int,
) -> int:
    """Upsert *candles* inside the caller's transaction; returns rows changed. The
    partitions must exist already (:func:`ensure_partitions`, in its own transaction)."""
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS ts_stage (timestamp bigint, open float8,"
            " high float8, low float8, close float8, volume float8) ON COMMIT DELETE ROWS"
        )
        cur.execute("TRUNCATE ts_stage")
        with cur.copy("COPY ts_stage FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(_copy_payload(candles))
        cur.execute(
            "INSERT INTO time_series (symbol, frequency, timestamp, exchange, open, high,"
            " low, close, volume, ingested_at)"
            " SELECT %s, %s, timestamp, %s, open, high, low, close, volume, %s FROM ts_stage"
            " ON CONFLICT (symbol, frequency, timestamp, exchange) DO UPDATE SET"
            " open = excluded.open, high = excluded.high, low = excluded.low,"
            " close = excluded.close, volume = excluded.volume,"
            " ingested_at = excluded.ingested_at"
            " WHERE (time_series.open, time_series.high, time_series.low, time_series.close,"
            " time_series.volume) IS DISTINCT FROM"
            " (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume)",
            (symbol, frequency, exchange, ingested_at),
        )
        return max(cur.rowcount, 0)


def _months(timestamps: np.ndarray) -> list[np.datetime64]:
    if len(timestamps) == 0:
        return []
    months = np.unique(timestamps.astype("datetime64[ms]").astype("datetime64[M]"))
    return list(months)


def partitions(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent"
        " WHERE p.relname = 'time_series' AND p.relnamespace = current_schema()::regnamespace"
    ).fetchall()
    return {row[0] for row in rows}


def ensure_partitions(conn: psycopg.Connection[Any], timestamps: np.ndarray) -> list[str]:
    """Create the monthly partitions *timestamps* need; returns the names created.

    Run it in a transaction of its own, before the write: a transaction that already
    holds locks on ``time_series`` and then waits for the advisory lock could deadlock
    with the creator, which needs an exclusive lock on ``time_series``."""
    months = _months(timestamps)
    wanted = {
        _MONTH_NAME.format(month.astype(object).year, month.astype(object).month): month
        for month in months
    }
    existing = partitions(conn)
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return []
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    existing = partitions(conn)
    created = []
    for name in missing:
        if name in existing:
            continue
        month = wanted[name]
        low = int(month.astype("datetime64[ms]").astype(np.int64))
        high = int((month + 1).astype("datetime64[ms]").astype(np.int64))
        _create_partition(conn, name, low, high)
        created.append(name)
    return created


def _create_partition(conn: psycopg.Connection[Any], name: str, low: int, high: int) -> None:
    table = sql.Identifier(name)
    conn.execute(
        "CREATE TEMP TABLE ts_moved ON COMMIT DROP AS WITH moved AS ("
        " DELETE FROM time_series_default WHERE timestamp >= %s AND timestamp < %s"
        " RETURNING *) SELECT * FROM moved",
        (low, high),
    )
    conn.execute(
        sql.SQL("CREATE TABLE {} PARTITION OF time_series FOR VALUES FROM ({}) TO ({})").format(
            table, sql.Literal(low), sql.Literal(high)
        )
    )
    captured = conn.execute(
        "SELECT 1 FROM pg_trigger WHERE tgname = %s", (f"{capture.PREFIX}time_series_i",)
    ).fetchone()
    if captured:  # writes addressed to the partition itself are captured too
        for statement in capture.partition_triggers(name):
            conn.execute(statement.encode())
    conn.execute("INSERT INTO time_series SELECT * FROM ts_moved")
    conn.execute("DROP TABLE ts_moved")


def read(
    conn: psycopg.Connection[Any],
    symbol: str,
    frequency: str,
    exchange: str | None,
    start: int | None,
    end: int | None,
) -> Candles:
    """Candles in ``[start, end)`` ordered by timestamp, via binary COPY."""
    clauses = [
        sql.SQL("symbol = {}").format(sql.Literal(symbol)),
        sql.SQL("frequency = {}").format(sql.Literal(frequency)),
    ]
    if exchange is not None:
        clauses.append(sql.SQL("exchange = {}").format(sql.Literal(exchange)))
    if start is not None:
        clauses.append(sql.SQL("timestamp >= {}").format(sql.Literal(int(start))))
    if end is not None:
        clauses.append(sql.SQL("timestamp < {}").format(sql.Literal(int(end))))
    query = sql.SQL(
        "COPY (SELECT timestamp, open, high, low, close, volume FROM time_series"
        " WHERE {} ORDER BY timestamp) TO STDOUT (FORMAT BINARY)"
    ).format(sql.SQL(" AND ").join(clauses))
    chunks: list[bytes] = []
    with conn.cursor() as cur, cur.copy(query) as copy:
        for chunk in copy:
            chunks.append(bytes(chunk))
    payload = b"".join(chunks)
    extension = struct.unpack_from(">i", payload, 15)[0]
    body = payload[19 + extension : len(payload) - 2]
    rows = np.frombuffer(body, _ROW_DTYPE)
    return Candles(*(rows[name].astype(rows[name].dtype.newbyteorder("=")) for name in COLUMNS))


def latest(
    conn: psycopg.Connection[Any],
    symbols: Sequence[str],
    frequency: str | None,
    exchange: str | None,
) -> list[tuple[Any, ...]]:
    """Newest candle per symbol through the (symbol, timestamp) index, one query."""
    extra, params = series_filters("%s", frequency, exchange, table="t.")
    query = (
        "SELECT l.* FROM unnest(%s::text[]) AS s(symbol) CROSS JOIN LATERAL ("
        " SELECT t.symbol, t.frequency, t.exchange, t.timestamp, t.open, t.high, t.low,"
        f" t.close, t.volume FROM time_series t WHERE t.symbol = s.symbol{extra}"
        " ORDER BY t.timestamp DESC LIMIT 1) AS l"
    )
    return conn.execute(query, [list(symbols), *params]).fetchall()


def frequencies(conn: psycopg.Connection[Any], symbol: str) -> list[str]:
    rows = conn.execute(
        "WITH RECURSIVE f(frequency) AS ("
        " SELECT min(frequency) FROM time_series WHERE symbol = %(s)s"
        " UNION ALL SELECT (SELECT min(frequency) FROM time_series"
        "  WHERE symbol = %(s)s AND frequency > f.frequency) FROM f WHERE f.frequency IS NOT NULL)"
        " SELECT frequency FROM f WHERE frequency IS NOT NULL",
        {"s": symbol},
    ).fetchall()
    return [row[0] for row in rows]


def exchanges(conn: psycopg.Connection[Any], symbol: str, frequency: str) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT exchange FROM time_series WHERE symbol = %s AND frequency = %s",
        (symbol, frequency),
    ).fetchall()
    return sorted(row[0] for row in rows)


def series(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT symbol, frequency, exchange, COUNT(*), MIN(timestamp), MAX(timestamp)"
        " FROM time_series GROUP BY symbol, frequency, exchange ORDER BY 1, 2, 3"
    ).fetchall()


def record_batch(
    conn: psycopg.Connection[Any],
    job_id: str,
    number: int,
    rows: int,
    changed: int,
    ingested_at: int,
) -> None:
    """Record one committed batch of *job_id* (inside the candles' transaction)."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO ingestion_batches (job_id, batch, rows, changed, ingested_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (job_id, batch) DO UPDATE SET"
            " rows = excluded.rows, changed = excluded.changed,"
            " ingested_at = excluded.ingested_at",
            (job_id, number, rows, changed, ingested_at),
        )


def batch_totals(conn: psycopg.Connection[Any], job_id: str) -> tuple[int, int]:
    """(batches, candles) recorded for *job_id*."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*), COALESCE(SUM(rows), 0) FROM ingestion_batches WHERE job_id = %s",
            (job_id,),
        )
        row = cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def unstored_candles(
    conn: psycopg.Connection[Any], symbol: str, frequency: str, exchange: str, candles: Candles
) -> tuple[Candles, bool]:
    """The candles that are new or differ from the stored ones (in the writer's
    transaction), and whether all of them are new keys: re-ingesting known candles
    costs a range read, not a write, and new ranges are COPYed straight in."""
    ts = candles.timestamp
    stored = read(conn, symbol, frequency, exchange, int(ts[0]), int(ts[-1]) + 1)
    return unstored(stored, candles)


class PostgresCandles:
    """:class:`~cryptotrading.market.backend.CandleBackend` on PostgreSQL: psycopg
    transactions, binary COPY in and out, monthly partitions made before each write."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def connection(self, *, write: bool) -> Iterator[psycopg.Connection[Any]]:
        pooled = self.engine.raw_connection()
        conn: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
        try:
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
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
        with self.connection(write=True) as conn:  # its own transaction: see ensure_partitions
            ensure_partitions(conn, candles.timestamp)
        with self.connection(write=True) as conn:
            fresh, all_new = unstored_candles(conn, symbol, frequency, exchange, candles)
            changed = 0
            if len(fresh):
                insert = insert_new if all_new else write
                changed = insert(conn, symbol, frequency, exchange, fresh, ingested_at)
            if batch is not None:
                record_batch(conn, batch.job_id, batch.number, len(candles), changed, ingested_at)
        return changed

    def partitions(self, conn: psycopg.Connection[Any]) -> list[str]:
        return sorted(partitions(conn))

    read = staticmethod(read)
    latest = staticmethod(latest)
    frequencies = staticmethod(frequencies)
    exchanges = staticmethod(exchanges)
    series = staticmethod(series)
    batch_totals = staticmethod(batch_totals)
