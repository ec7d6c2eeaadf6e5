"""Archive old candles from the hot ``time_series`` table into Parquet files.

Layout: ``<archive_dir>/exchange=E/symbol=S/timeframe=T/month=YYYY-MM/candles.parquet``
(values percent-encoded, so ``BTC/USDT`` is ``BTC%2FUSDT``; the empty exchange is
``_``). One file per partition; archiving a partition again merges into it.

Each partition moves in one database transaction::

    DELETE ... RETURNING the rows  ->  merge them into the Parquet file (written to a
    temporary name, fsynced, atomically renamed)  ->  read the file back and verify row
    count and checksum of exactly those rows  ->  COMMIT

A crash before COMMIT rolls the delete back: the rows are then both hot and archived,
which readers (:func:`read_archive` merged by the market store) resolve in favour of
the hot copy, and the next run merges them into the file again without duplicating
them. A crash after COMMIT leaves them archived only. Nothing is ever lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine, text

from cryptotrading.db.session import translate_errors
from cryptotrading.errors import StoreError, ValidationError
from cryptotrading.migrations import capture

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume", "ingested_at")
SCHEMA = pa.schema(
    [
        ("timestamp", pa.int64()),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
        ("ingested_at", pa.int64()),
    ]
)
FILE_NAME = "candles.parquet"
MANIFEST_NAME = "_manifest.json"
_EMPTY_EXCHANGE = "_"  # directory name of the empty exchange


@dataclass(frozen=True)
class Partition:
    """One archive partition: a series and a calendar month (UTC)."""

    exchange: str
    symbol: str
    timeframe: str
    month: str  # YYYY-MM

    def directory(self, root: Path) -> Path:
        exchange = quote(self.exchange, safe="") or _EMPTY_EXCHANGE
        return (
            root
            / f"exchange={exchange}"
            / f"symbol={quote(self.symbol, safe='')}"
            / f"timeframe={quote(self.timeframe, safe='')}"
            / f"month={self.month}"
        )

    def bounds(self) -> tuple[int, int]:
        """[start, end) of the month in epoch milliseconds."""
        start = datetime.strptime(self.month, "%Y-%m").replace(tzinfo=UTC)
        end = (start + timedelta(days=32)).replace(day=1)
        return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


@dataclass
class ArchiveReport:
    """What one archive run moved."""

    cutoff_ms: int
    partitions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(int(p["rows"]) for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": self.rows}


#: The oldest age accepted: older candles than this cannot exist (epoch ms from 1970).
MAX_AGE = timedelta(days=200 * 366)


def parse_age(value: str) -> timedelta:
    """``90d``, ``12h``, ``30m`` or ``2w`` as a timedelta (at most 200 years)."""
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = value[:-1], value[-1:].lower()
    if unit not in units or not (number.isascii() and number.isdigit()) or not number.strip("0"):
        raise ValidationError(
            f"invalid age {_shown(value)}",
            hint="Use a positive number followed by m, h, d or w, e.g. 90d.",
        )
    # Compare before building the timedelta: 99999999999d would overflow it.
    digits = number.lstrip("0")
    if len(digits) > 12 or int(digits) > MAX_AGE / timedelta(**{units[unit]: 1}):
        raise ValidationError(
            f"age {_shown(value)} is more than 200 years",
            hint="Give an age of at most 200 years (73200d); no candle is older.",
        )
    return timedelta(**{units[unit]: int(digits)})


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:20] + "..." + value[-4:])


def month_of(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).strftime("%Y-%m")


def checksum(table: pa.Table) -> str:
    """sha256 of the rows' values in timestamp order (independent of file encoding)."""
    ordered = table.select(list(COLUMNS)).sort_by("timestamp")
    digest = hashlib.sha256()
    for name in COLUMNS:
        digest.update(np.ascontiguousarray(ordered.column(name).to_numpy()).tobytes())
    return digest.hexdigest()


def archive_time_series(
    engine: Engine, archive_dir: Path, older_than: timedelta, *, now: datetime | None = None
) -> ArchiveReport:
    """Move candles older than *older_than* into Parquet, one verified partition at a time."""
    cutoff = int(((now or datetime.now(UTC)) - older_than).timestamp() * 1000)
    report = ArchiveReport(cutoff_ms=cutoff)
    archive_dir.mkdir(parents=True, exist_ok=True)
    for partition in _partitions_before(engine, cutoff):
        moved = _archive_partition(engine, archive_dir, partition, cutoff)
        if moved is not None:
            report.partitions.append(moved)
    return report


def plan_archive(
    engine: Engine, older_than: timedelta, *, now: datetime | None = None
) -> ArchiveReport:
    """What :func:`archive_time_series` would move (partitions and rows); changes nothing."""
    cutoff = int(((now or datetime.now(UTC)) - older_than).timestamp() * 1000)
    report = ArchiveReport(cutoff_ms=cutoff)
    count = text(
        "SELECT count(*) FROM time_series WHERE exchange = :exchange AND symbol = :symbol "
        "AND frequency = :frequency AND timestamp >= :start AND timestamp < :end"
    )
    partitions = _partitions_before(engine, cutoff)
    with translate_errors("market"), engine.connect() as connection:
        for partition in partitions:
            start, end = partition.bounds()
            rows = connection.execute(
                count,
                {
                    "exchange": partition.exchange,
                    "symbol": partition.symbol,
                    "frequency": partition.timeframe,
                    "start": start,
                    "end": min(end, cutoff),
                },
            ).scalar_one()
            if rows:
                report.partitions.append({**asdict(partition), "rows": int(rows)})
    return report


def _partitions_before(engine: Engine, cutoff: int) -> list[Partition]:
    with translate_errors("market"), engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT exchange, symbol, frequency, min(timestamp), max(timestamp) "
                "FROM time_series WHERE timestamp < :cutoff GROUP BY exchange, symbol, frequency"
            ),
            {"cutoff": cutoff},
        ).all()
    partitions = []
    for exchange, symbol, frequency, first, last in rows:
        for month in _months(int(first), int(last)):
            partitions.append(Partition(exchange, symbol, frequency, month))
    return partitions


def _months(first_ms: int, last_ms: int) -> Iterator[str]:
    month = datetime.fromtimestamp(first_ms / 1000, tz=UTC).replace(day=1)
    last = datetime.fromtimestamp(last_ms / 1000, tz=UTC)
    while month <= last:
        yield month.strftime("%Y-%m")
        month = (month + timedelta(days=32)).replace(day=1)


def _archive_partition(
    engine: Engine, root: Path, partition: Partition, cutoff: int
) -> dict[str, Any] | None:
    start, end = partition.bounds()
    with translate_errors("market"), engine.begin() as connection:
        moved = _delete_returning(connection, partition, start, min(end, cutoff))
        if moved.num_rows == 0:
            return None
        path = _merge_into_file(root, partition, moved)
        _verify(path, moved)
        # COMMIT happens when the block ends: only verified rows leave the hot table.
    return {
        "exchange": partition.exchange,
        "symbol": partition.symbol,
        "timeframe": partition.timeframe,
        "month": partition.month,
        "rows": moved.num_rows,
        "file": str(path),
        "checksum": checksum(moved),
    }


def _delete_returning(
    connection: Connection, partition: Partition, start: int, end: int
) -> pa.Table:
    raw = connection.connection.dbapi_connection
    if isinstance(raw, sqlite3.Connection):  # one change-log range, not a row per candle
        series = (partition.symbol, partition.timeframe, partition.exchange)
        with capture.series_batch(raw, *series, start, end - 1):
            return _delete_rows(connection, partition, start, end)
    return _delete_rows(connection, partition, start, end)


def _delete_rows(connection: Connection, partition: Partition, start: int, end: int) -> pa.Table:
    result = connection.execute(
        text(
            "DELETE FROM time_series WHERE exchange = :exchange AND symbol = :symbol "
            "AND frequency = :frequency AND timestamp >= :start AND timestamp < :end "
            f"RETURNING {', '.join(COLUMNS)}"
        ),
        {
            "exchange": partition.exchange,
            "symbol": partition.symbol,
            "frequency": partition.timeframe,
            "start": start,
            "end": end,
        },
    ).all()
    columns: list[tuple[Any, ...]] = (
        list(zip(*result, strict=True)) if result else [() for _ in COLUMNS]
    )
    return pa.Table.from_arrays(
        [pa.array(values, type=SCHEMA.field(i).type) for i, values in enumerate(columns)],
        schema=SCHEMA,
    ).sort_by("timestamp")


def _merge_into_file(root: Path, partition: Partition, rows: pa.Table) -> Path:
    """Union *rows* with the partition's file (new rows win), written atomically."""
    directory = partition.directory(root)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    merged = rows
    if path.exists():
        existing = pq.read_table(path, schema=SCHEMA)
        keep = pc.invert(pc.is_in(existing.column("timestamp"), value_set=rows.column("timestamp")))
        merged = pa.concat_tables([existing.filter(keep), rows]).sort_by("timestamp")
    metadata = {
        b"cryptotrading.exchange": partition.exchange.encode(),
        b"cryptotrading.symbol": partition.symbol.encode(),
        b"cryptotrading.timeframe": partition.timeframe.encode(),
    }
    merged = merged.replace_schema_metadata(metadata)
    for leftover in directory.glob(f".{FILE_NAME}.*.tmp"):  # from an archiver killed mid-write
        leftover.unlink(missing_ok=True)
    temporary = directory / f".{FILE_NAME}.{os.getpid()}.tmp"
    pq.write_table(merged, temporary, compression="zstd")
    _fsync(temporary)
    os.replace(temporary, path)
    _fsync(directory)
    manifest = {"rows": merged.num_rows, "checksum": checksum(merged)}
    manifest_tmp = directory / f".{MANIFEST_NAME}.tmp"
    manifest_tmp.write_text(json.dumps(manifest, sort_keys=True))
    _fsync(manifest_tmp)
    os.replace(manifest_tmp, directory / MANIFEST_NAME)
    return path


def _verify(path: Path, moved: pa.Table) -> None:
    """The file holds exactly the moved rows (same count, same checksum)."""
    stored = pq.read_table(path, schema=SCHEMA)
    mask = pc.is_in(stored.column("timestamp"), value_set=moved.column("timestamp"))
    subset = stored.filter(mask)
    if subset.num_rows != moved.num_rows or checksum(subset) != checksum(moved):
        raise StoreError(
            f"archive verification failed for {path}: {subset.num_rows} rows read back, "
            f"{moved.num_rows} archived; rows kept in the hot table",
            hint="Check the archive disk; nothing was deleted.",
        )


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def partition_files(
    archive_dir: Path,
    symbol: str | None = None,
    timeframe: str | None = None,
    exchange: str | None = None,
) -> Iterator[tuple[Partition, Path]]:
    """Complete partition files, optionally of one symbol / timeframe / exchange, in
    path order. A month directory without its file is a first write that never
    finished: its rows are still hot, so it is skipped."""
    if not archive_dir.is_dir():
        return
    parts = [
        "*" if exchange is None else quote(exchange, safe="") or _EMPTY_EXCHANGE,
        "*" if symbol is None else quote(symbol, safe=""),
        "*" if timeframe is None else quote(timeframe, safe=""),
    ]
    pattern = "exchange={}/symbol={}/timeframe={}/month=*/".format(*parts) + FILE_NAME
    for path in sorted(archive_dir.glob(pattern)):
        values = [unquote(part.name.split("=", 1)[1]) for part in reversed(path.parents[:4])]
        found_exchange = "" if values[0] == _EMPTY_EXCHANGE else values[0]
        yield Partition(found_exchange, values[1], values[2], values[3]), path


def read_archive(
    archive_dir: Path,
    symbol: str,
    timeframe: str,
    *,
    exchange: str | None = None,
    start: int | None = None,
    end: int | None = None,
) -> pa.Table:
    """Archived candles of a series in [start, end) ms, with an ``exchange`` column."""
    tables = []
    for partition, path in partition_files(archive_dir, symbol, timeframe, exchange):
        first, last = partition.bounds()
        if (start is not None and last <= start) or (end is not None and first >= end):
            continue
        table = pq.read_table(path, schema=SCHEMA)
        exchanges = pa.array([partition.exchange] * table.num_rows, pa.string())
        tables.append(table.append_column("exchange", exchanges))
    schema = SCHEMA.append(pa.field("exchange", pa.string()))
    if not tables:
        return schema.empty_table()
    combined = pa.concat_tables(tables)
    if start is not None:
        combined = combined.filter(pc.greater_equal(combined.column("timestamp"), start))
    if end is not None:
        combined = combined.filter(pc.less(combined.column("timestamp"), end))
    return combined.sort_by([("timestamp", "ascending"), ("exchange", "ascending")])


def verify_archive(archive_dir: Path) -> list[dict[str, Any]]:
    """Check every partition file against its manifest (row count and checksum).
    Reports instead of raising: each entry has ``ok`` and, when not, a ``problem``."""
    results = []
    for _, path in partition_files(archive_dir):
        problem, rows = _verify_partition(path)
        results.append(
            {"partition": str(path.parent), "rows": rows, "ok": not problem, "problem": problem}
        )
    return results


def _verify_partition(path: Path) -> tuple[str, int | None]:
    try:
        table = pq.read_table(path, schema=SCHEMA)
    except (OSError, ValueError, pa.ArrowException) as exc:
        return f"unreadable Parquet file: {exc}", None
    try:
        manifest = json.loads((path.parent / MANIFEST_NAME).read_text())
        expected_rows, expected_sum = int(manifest["rows"]), str(manifest["checksum"])
    except FileNotFoundError:
        return (
            "no manifest (an interrupted archive run? run `market archive` again)",
            table.num_rows,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable manifest: {exc}", table.num_rows
    if table.num_rows != expected_rows or checksum(table) != expected_sum:
        return (
            f"{table.num_rows} rows do not match the manifest ({expected_rows} rows and its "
            "checksum): the file changed, or an archive run was interrupted -- run "
            "`market archive` again, else restore the partition from a backup"
        ), table.num_rows
    return "", table.num_rows


__all__ = [
    "ArchiveReport",
    "Partition",
    "archive_time_series",
    "checksum",
    "month_of",
    "parse_age",
    "partition_files",
    "plan_archive",
    "read_archive",
    "verify_archive",
]
