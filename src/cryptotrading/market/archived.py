"""Transparent reads over the hot store and the Parquet archive.

The archive (:mod:`cryptotrading.ops.archive`, written by ``market archive``) keeps
old candles as ``exchange=E/symbol=S/timeframe=T/month=YYYY-MM/candles.parquet``.
Reads merge it with ``time_series``; a candle present in both (a crash between
archiving and deleting) is taken from the hot store.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np

from cryptotrading.market.candles import COLUMNS, Candles
from cryptotrading.ops.archive import read_archive


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
