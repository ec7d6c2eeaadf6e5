"""Transparent reads over the hot store and the Parquet archive.

The archive (:mod:`cryptotrading.market.archive`, written by ``market archive``) keeps
old candles as ``exchange=E/symbol=S/timeframe=T/month=YYYY-MM/candles.parquet``.
Reads merge it with ``time_series``; a candle present in both (a crash between
archiving and deleting) is taken from the hot store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from cryptotrading.market.archive import partition_files, read_archive
from cryptotrading.market.candles import COLUMNS, Candles


def archived_series(archive_dir: Path) -> dict[tuple[str, str, str], tuple[int, int, int]]:
    """(symbol, timeframe, exchange) -> (rows, first, last) of the archive, from the
    Parquet footers (row counts and timestamp statistics; no data pages are read)."""
    found: dict[tuple[str, str, str], tuple[int, int, int]] = {}
    for partition, path in partition_files(archive_dir):
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
        (partition, path)
        for partition, path in partition_files(archive_dir, symbol, timeframe, exchange)
        if newer_than is None or partition.bounds()[1] > newer_than + 1
    ]
    best: tuple[Any, ...] | None = None
    for partition, path in sorted(files, key=lambda item: item[0].month, reverse=True):
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
    return {partition.timeframe for partition, _ in partition_files(archive_dir, symbol)}


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
