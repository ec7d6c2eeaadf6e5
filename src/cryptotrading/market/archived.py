"""Transparent reads over the hot store and the Parquet archive.

The archive (:mod:`cryptotrading.ops.archive`, written by ``market archive``) keeps
old candles as ``exchange=E/symbol=S/timeframe=T/month=YYYY-MM/candles.parquet``.
Reads merge it with ``time_series``; a candle present in both (a crash between
archiving and deleting) is taken from the hot store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, unquote

import numpy as np
import pyarrow.parquet as pq

from cryptotrading.market.candles import COLUMNS, Candles
from cryptotrading.ops.archive import EMPTY_EXCHANGE_DIR, FILE_NAME, Partition, read_archive


class ArchivedFile(NamedTuple):
    """One archive partition file and the series and month it holds."""

    partition: Partition
    path: Path


def archived_files(
    archive_dir: Path,
    symbol: str | None = None,
    timeframe: str | None = None,
    exchange: str | None = None,
) -> Iterator[ArchivedFile]:
    """Complete partition files (a directory without its file is a first write that
    never finished: its rows are still hot), optionally of one symbol/timeframe/exchange."""
    if not archive_dir.is_dir():
        return
    parts = [
        "*" if exchange is None else quote(exchange, safe="") or EMPTY_EXCHANGE_DIR,
        "*" if symbol is None else quote(symbol, safe=""),
        "*" if timeframe is None else quote(timeframe, safe=""),
    ]
    pattern = "exchange={}/symbol={}/timeframe={}/month=*/".format(*parts) + FILE_NAME
    for path in archive_dir.glob(pattern):
        values = [unquote(part.name.split("=", 1)[1]) for part in reversed(path.parents[:4])]
        found_exchange = "" if values[0] == EMPTY_EXCHANGE_DIR else values[0]
        yield ArchivedFile(Partition(found_exchange, values[1], values[2], values[3]), path)


def archived_series(archive_dir: Path) -> dict[tuple[str, str, str], tuple[int, int, int]]:
    """(symbol, timeframe, exchange) -> (rows, first, last) of the archive, from the
    Parquet footers (row counts and timestamp statistics; no data pages are read)."""
    found: dict[tuple[str, str, str], tuple[int, int, int]] = {}
    for partition, path in archived_files(archive_dir):
        metadata = pq.read_metadata(path)
        if metadata.num_rows == 0:
            continue
        stats = [metadata.row_group(i).column(0).statistics for i in range(metadata.num_row_groups)]
        first = min(int(s.min) for s in stats if s is not None and s.has_min_max)
        last = max(int(s.max) for s in stats if s is not None and s.has_min_max)
        key = (partition.symbol, partition.timeframe, partition.exchange)
        rows, low, high = found.get(key, (0, first, last))
        found[key] = (rows + metadata.num_rows, min(low, first), max(high, last))
    return found


def archived_latest(
    archive_dir: Path,
    symbol: str,
    timeframe: str | None,
    exchange: str | None,
    newer_than: int | None,
) -> tuple[Any, ...] | None:
    """The newest archived candle of *symbol* as (symbol, timeframe, exchange,
    timestamp, open, high, low, close, volume), if newer than *newer_than*. Only the
    months that could hold one are opened (newest first), and only their last row."""
    files = [
        item
        for item in archived_files(archive_dir, symbol, timeframe, exchange)
        if newer_than is None or item.partition.bounds()[1] > newer_than + 1
    ]
    best: tuple[Any, ...] | None = None
    for partition, path in sorted(files, key=lambda item: item.partition.month, reverse=True):
        if best is not None and partition.bounds()[1] <= best[3]:
            break  # every older month ends before the candle already found
        parquet = pq.ParquetFile(path)
        if parquet.metadata.num_rows == 0:
            continue
        group = parquet.read_row_group(parquet.metadata.num_row_groups - 1)
        row = group.slice(group.num_rows - 1).to_pylist()[0]
        if newer_than is not None and row["timestamp"] <= newer_than:
            continue
        if best is None or row["timestamp"] > best[3]:
            best = (
                symbol,
                partition.timeframe,
                partition.exchange,
                *(row[name] for name in COLUMNS),
            )
    return best


def archived_timeframes(archive_dir: Path, symbol: str) -> set[str]:
    """Timeframes of *symbol* present in the archive (any exchange)."""
    if not archive_dir.is_dir():
        return set()
    pattern = f"exchange=*/symbol={quote(symbol, safe='')}/timeframe=*"
    return {unquote(path.name.split("=", 1)[1]) for path in archive_dir.glob(pattern)}


def read_archived(
    archive_dir: Path,
    symbol: str,
    timeframe: str,
    exchange: str | None,
    start: int | None,
    end: int | None,
) -> tuple[Candles, set[str]]:
    """Archived candles of one series and the exchanges they come from."""
    if not archive_dir.is_dir():
        return Candles.empty(), set()
    table = read_archive(archive_dir, symbol, timeframe, exchange=exchange, start=start, end=end)
    if table.num_rows == 0:
        return Candles.empty(), set()
    exchanges = set(table.column("exchange").to_pylist())
    columns = [table.column(name).to_numpy() for name in COLUMNS]
    candles = Candles(
        np.ascontiguousarray(columns[0], dtype=np.int64),
        *(np.ascontiguousarray(column, dtype=np.float64) for column in columns[1:]),
    )
    return candles, exchanges


def merge_hot_and_archived(hot: Candles, archived: Candles) -> Candles:
    """Union by timestamp, sorted; the hot copy wins where both have a candle."""
    if len(archived) == 0:
        return hot
    if len(hot) == 0:
        return archived
    only_archived = ~np.isin(archived.timestamp, hot.timestamp)
    merged = {
        name: np.concatenate((getattr(archived, name)[only_archived], getattr(hot, name)))
        for name in COLUMNS
    }
    order = np.argsort(merged["timestamp"], kind="stable")
    return Candles(*(merged[name][order] for name in COLUMNS))
