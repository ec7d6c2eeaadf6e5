"""Import a candle file (or the candles built from a trades file) into ``time_series``
in committed batches.

The whole file is read and validated first, so bad input writes nothing: an
unreadable, oversized (``max_import_bytes``) or empty file (``no candles in FILE``)
is refused before a job is recorded, so no ``data_ingestion_jobs`` row claims a
0-row success. The file is then written in batches of ``batch_size`` candles, one
transaction each: a killed import leaves every committed batch in place, and
running it again completes it (writes are idempotent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptotrading.errors import ValidationError
from cryptotrading.market.backend import BatchMark
from cryptotrading.market.candles import Candles
from cryptotrading.market.formats import detect_format, no_data, read_candles_file
from cryptotrading.market.jobs import JobRecorder
from cryptotrading.market.store import MarketStore
from cryptotrading.market.timeframes import Timeframe, parse_timeframe
from cryptotrading.market.trades import read_trades_file, trades_to_candles
from cryptotrading.market.validation import check_names, validate_candles

DEFAULT_BATCH = 50_000

#: Called after each committed batch with (rows written so far, total rows).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImportResult:
    """Outcome of one file import."""

    path: str
    format: str
    rows: int
    changed: int
    batches: int
    job_id: str

    @property
    def unchanged(self) -> int:
        return self.rows - self.changed


def import_file(
    market: MarketStore,
    path: Path,
    *,
    symbol: str,
    timeframe: str,
    exchange: str = "",
    fmt: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> ImportResult:
    """Validate the whole file, then write it in committed batches; recorded as a
    ``data_ingestion_jobs`` row of type ``import``."""
    frame = _check(symbol, timeframe, exchange, batch_size)
    fmt = fmt or detect_format(path)
    candles = read_candles_file(path, fmt, max_bytes=_max_bytes(market))
    if len(candles) == 0:
        raise no_data(path, "candles")
    validate_candles(candles, frame)
    params = {"path": str(path), "format": fmt, "rows": len(candles), "batch_size": batch_size}
    return _write_batches(
        market, path, fmt, candles, symbol, frame, exchange, batch_size, params, progress
    )


def import_trades_file(
    market: MarketStore,
    path: Path,
    *,
    symbol: str,
    timeframe: str = "1m",
    exchange: str = "",
    fmt: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> ImportResult:
    """Build *timeframe* candles from a whole trades file
    (:mod:`cryptotrading.market.trades`), then write them like :func:`import_file`."""
    frame = _check(symbol, timeframe, exchange, batch_size)
    fmt = fmt or detect_format(path)
    trades = read_trades_file(path, fmt, max_bytes=_max_bytes(market))
    if len(trades) == 0:
        raise no_data(path, "trades")
    candles = trades_to_candles(trades, frame)
    validate_candles(candles, frame)  # once for the whole file; batches are not re-checked
    params = {
        "path": str(path),
        "format": fmt,
        "source": "trades",
        "trades": len(trades),
        "rows": len(candles),
        "batch_size": batch_size,
    }
    return _write_batches(
        market, path, fmt, candles, symbol, frame, exchange, batch_size, params, progress
    )


def _max_bytes(market: MarketStore) -> int:
    return market.stores.settings.max_import_bytes


def _check(symbol: str, timeframe: str, exchange: str, batch_size: int) -> Timeframe:
    if batch_size < 1:
        raise ValidationError("batch size must be at least 1", hint="Use --batch-size 50000.")
    frame = parse_timeframe(timeframe)
    check_names(symbol, exchange)
    return frame


def _write_batches(
    market: MarketStore,
    path: Path,
    fmt: str,
    candles: Candles,
    symbol: str,
    frame: Timeframe,
    exchange: str,
    batch_size: int,
    params: dict[str, Any],
    progress: Progress | None,
) -> ImportResult:
    total = len(candles)
    job = JobRecorder(
        market.stores,
        job_type="import",
        source=exchange or None,
        symbol=symbol,
        timeframe=frame.name,
        params=params,
        committed=market.committed_batches,
    )
    written = changed = batches = 0
    try:
        for begin in range(0, total, batch_size):
            batch = candles.slice(begin, begin + batch_size)
            result = market.write_validated(
                batch,
                symbol=symbol,
                timeframe=frame,
                exchange=exchange,
                batch=BatchMark(job.job_id, batches),
            )
            written += result.rows
            changed += result.changed
            batches += 1
            if progress is not None:
                progress(written, total)
            job.progress(written, 100.0 * written / total, unchanged=written - changed)
    except BaseException as exc:
        job.fail(exc, cancelled=isinstance(exc, KeyboardInterrupt))
        raise
    job.finish(unchanged=written - changed)
    return ImportResult(str(path), fmt, total, changed, batches, job.job_id)
