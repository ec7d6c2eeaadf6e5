"""``MarketStore``: write, read (at any timeframe) and query candles in ``time_series``.

Writes and reads go through the raw driver (``sqlite3`` / psycopg binary COPY) in one
transaction per call; SQLAlchemy only supplies the configured, pooled connections.
Those calls bypass SQLAlchemy's statement events, so each one is timed here
(:class:`TimedCandles`) and a slow one is recorded like any other store's slow query.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from cryptotrading.db.session import translate
from cryptotrading.db.timing import StatementTimer
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.market.archived import (
    archived_latest,
    archived_series,
    archived_timeframes,
    merge_hot_and_archived,
    read_archived,
)
from cryptotrading.market.backend import BatchMark, CandleBackend
from cryptotrading.market.candles import VALUE_COLUMNS, Candles, to_candles, without_negative_zero
from cryptotrading.market.resample import resample
from cryptotrading.market.timeframes import Timeframe, parse_timeframe
from cryptotrading.market.trades import to_trades, trades_to_candles
from cryptotrading.market.validation import (
    END_TIMESTAMP,
    MIN_TIMESTAMP,
    check_names,
    validate_candles,
)
from cryptotrading.stores import Stores

TimeLike = int | str | datetime | date | pd.Timestamp | None


class LatestCandle(NamedTuple):
    """The newest stored candle of one symbol."""

    symbol: str
    timeframe: str
    exchange: str
    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class SeriesInfo(NamedTuple):
    """One stored series: its key, row count and time span (epoch ms)."""

    symbol: str
    timeframe: str
    exchange: str
    rows: int
    first: int
    last: int
    archived: int = 0  # of ``rows``, how many are in the Parquet archive


@dataclass(frozen=True)
class WriteResult:
    """What one ``write_ohlcv`` call did: rows received and rows inserted or changed
    (``unchanged`` rows were already stored with identical values)."""

    rows: int
    changed: int

    @property
    def unchanged(self) -> int:
        return self.rows - self.changed


def to_epoch_ms(value: TimeLike) -> int | None:
    """Epoch milliseconds from an int (ms), an ISO string or a datetime (naive = UTC);
    a time outside the candle calendar (1970 up to 2100) is a :class:`ValidationError`."""
    if value is None:
        return None
    if isinstance(value, int):
        return _in_calendar(value, value)
    try:
        stamp = pd.Timestamp(value)
        if not pd.isna(stamp):
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
            # exact, and valid for years 1..9999 (Timestamp.value is ns: 1677..2262 only)
            ms = (stamp.to_pydatetime() - _EPOCH) // timedelta(milliseconds=1)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(
            f"cannot parse date {str(value)[:80]!r}: {str(exc)[:200]}",
            hint="Use an ISO date from 1970 up to 2100, e.g. 2021-01-31 or "
            "2021-01-31T12:00:00Z, or epoch ms.",
        ) from None
    if pd.isna(stamp):
        raise ValidationError(f"cannot parse date {str(value)[:80]!r}", hint="Use an ISO date.")
    return _in_calendar(ms, value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _in_calendar(ms: int, given: object) -> int:
    if not MIN_TIMESTAMP <= ms <= END_TIMESTAMP:  # END itself: an exclusive end bound
        raise ValidationError(
            f"date {str(given)[:80]!r} is outside 1970-01-01..2099-12-31",
            hint="Candle times lie from 1970 up to 2100 (UTC); use a date in that range.",
        )
    return ms


class MarketStore:
    """The high-frequency candle store (``time_series``) of a :class:`Stores`."""

    def __init__(self, stores: Stores, *, archive_dir: Path | None = None) -> None:
        """*archive_dir*: the Parquet archive merged into reads (default
        ``<data dir>/archive``; reads ignore it while it does not exist)."""
        self.stores = stores
        self.archive_dir = archive_dir or stores.settings.data_dir / "archive"
        self.engine: Engine = stores.engine(stores.market)
        self.backend = self.engine.dialect.name
        self._backend: CandleBackend = TimedCandles(
            _candle_backend(self.engine, native=stores.settings.native_reads),
            StatementTimer(stores.market.name, stores.settings.slow_query_ms, stores.app.url),
        )

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Driver errors raised inside the block as :mod:`cryptotrading.errors`."""
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            yield
        except dbapi.Error as exc:
            wrapped = DBAPIError.instance(None, None, exc, dbapi.Error)
            assert isinstance(wrapped, DBAPIError)
            raise translate(wrapped, "market store") from exc

    @contextmanager
    def _connection(self, *, write: bool) -> Iterator[Any]:
        """A raw driver connection; with *write*, inside one committed transaction."""
        with self._translated(), self._backend.connection(write=write) as conn:
            yield conn

    # -- writing ---------------------------------------------------------------

    def write_ohlcv(
        self,
        data: Any,
        *,
        symbol: str,
        timeframe: str,
        exchange: str = "",
        batch: BatchMark | None = None,
    ) -> WriteResult:
        """Validate and upsert candles in one transaction.

        *data*: a DataFrame (``timestamp``/``date`` + ``open high low close volume``),
        an Arrow table, a numpy structured or n x 6 array, or ccxt rows. Identical
        candles are left alone; changed ones replace the stored ones. Invalid data
        raises :class:`ValidationError` naming the first bad row; nothing is written.
        *batch* records the write as one batch of a job in ``ingestion_batches``, in
        the same transaction as the candles.
        """
        frame = parse_timeframe(timeframe)
        check_names(symbol, exchange)
        candles = to_candles(data)
        validate_candles(candles, frame)
        return self.write_validated(
            candles, symbol=symbol, timeframe=frame, exchange=exchange, batch=batch
        )

    def write_validated(
        self,
        candles: Candles,
        *,
        symbol: str,
        timeframe: Timeframe,
        exchange: str = "",
        batch: BatchMark | None = None,
    ) -> WriteResult:
        """Upsert candles that :func:`~cryptotrading.market.validation.validate_candles`
        and :func:`~cryptotrading.market.validation.check_names` already accepted (the
        importer checks a whole file once, then writes it in batches)."""
        candles = without_negative_zero(candles)
        if len(candles) == 0:
            return WriteResult(0, 0)
        frame = timeframe
        now = int(time.time() * 1000)
        with self._translated():
            changed = self._backend.write(symbol, frame.name, exchange, candles, now, batch)
        return WriteResult(len(candles), int(changed))

    def committed_batches(self, job_id: str) -> tuple[int, int]:
        """(batches, candles) of *job_id* committed to this store (``ingestion_batches``)."""
        with self._connection(write=False) as conn:
            batches, rows = self._backend.batch_totals(conn, job_id)
        return int(batches), int(rows)

    def write_trades(
        self, data: Any, *, symbol: str, timeframe: str = "1m", exchange: str = ""
    ) -> WriteResult:
        """Build *timeframe* candles from trades (ccxt trade dicts, Freqtrade rows or a
        table; see :mod:`cryptotrading.market.trades`) and write them with
        :meth:`write_ohlcv`. ``rows`` of the result counts candles, not trades."""
        candles = trades_to_candles(to_trades(data), parse_timeframe(timeframe))
        return self.write_ohlcv(candles, symbol=symbol, timeframe=timeframe, exchange=exchange)

    # -- reading ---------------------------------------------------------------

    def timeframes(self, symbol: str) -> list[str]:
        """Timeframes stored for *symbol* (hot or archived), finest first."""
        with self._connection(write=False) as conn:
            names: list[str] = self._backend.frequencies(conn, symbol)
        every = set(names) | archived_timeframes(self.archive_dir, symbol)
        return sorted(every, key=lambda name: parse_timeframe(name).ms)

    def read_candles(
        self,
        symbol: str,
        timeframe: str,
        start: TimeLike = None,
        end: TimeLike = None,
        exchange: str | None = None,
        *,
        complete_only: bool = False,
    ) -> Candles:
        """Candles in ``[start, end)``; resampled from a finer stored timeframe when
        *timeframe* itself is not stored (see :mod:`cryptotrading.market.resample`)."""
        frame = parse_timeframe(timeframe)
        low, high = to_epoch_ms(start), to_epoch_ms(end)
        with self._connection(write=False) as conn:
            hot_frequencies: list[str] = self._backend.frequencies(conn, symbol)
            stored = set(hot_frequencies) | archived_timeframes(self.archive_dir, symbol)
            if frame.name in stored:
                source, read_low = frame, low
            else:
                source = self._finest_source(symbol, frame, sorted(stored))
                read_low = None if low is None else frame.floor(low)
            candles = self._backend.read(conn, symbol, source.name, exchange, read_low, high)
            archived, archived_from = read_archived(
                self.archive_dir, symbol, source.name, exchange, read_low, high
            )
            if exchange is None and archived_from:
                hot_from = (
                    set(self._backend.exchanges(conn, symbol, source.name))
                    if len(candles)
                    else set()
                )
                if len(archived_from | hot_from) > 1:
                    self._several_exchanges(symbol, source.name, archived_from | hot_from)
            candles = merge_hot_and_archived(candles, archived)
            self._check_single_exchange(conn, candles, symbol, source.name, exchange)
        if source is frame:
            return candles
        out = resample(candles, source, frame, complete_only=complete_only)
        if low is not None and len(out) and out.timestamp[0] < low:
            out = out.slice(1, len(out))
        return out

    def read_ohlcv(
        self,
        symbol: str,
        timeframe: str,
        start: TimeLike = None,
        end: TimeLike = None,
        exchange: str | None = None,
        as_: str = "pandas",
        *,
        complete_only: bool = False,
    ) -> Any:
        """Candles as a DataFrame (``as_="pandas"``, UTC DatetimeIndex + ``timestamp``
        epoch-ms column), an Arrow table (``"arrow"``) or a numpy structured array
        (``"numpy"``). *exchange* None reads the only exchange stored."""
        candles = self.read_candles(
            symbol, timeframe, start, end, exchange, complete_only=complete_only
        )
        return candles.convert(as_)

    def read_panel(
        self,
        symbols: Sequence[str],
        timeframe: str,
        start: TimeLike = None,
        end: TimeLike = None,
        exchange: str | None = None,
        *,
        column: str = "close",
        complete_only: bool = False,
        workers: int = 4,
    ) -> pd.DataFrame:
        """One *column* (default ``close``) of several symbols side by side: a DataFrame
        with a UTC DatetimeIndex (the union of open times) and one column per symbol,
        NaN where a symbol has no candle. Symbols are read by up to *workers* threads
        (native SQLite reads and psycopg release the GIL while they wait)."""
        names = list(dict.fromkeys([symbols] if isinstance(symbols, str) else symbols))
        if not names:
            raise ValidationError("no symbols given", hint="Pass one or more symbols.")
        if column not in VALUE_COLUMNS:
            raise ValidationError(
                f"unknown column {column!r}", hint="Use one of: " + ", ".join(VALUE_COLUMNS) + "."
            )

        def read(symbol: str) -> pd.Series:
            candles = self.read_candles(
                symbol, timeframe, start, end, exchange, complete_only=complete_only
            )
            return pd.Series(getattr(candles, column), index=candles.timestamp, name=symbol)

        with ThreadPoolExecutor(max(1, min(workers, len(names)))) as pool:
            series = list(pool.map(read, names))
        panel = pd.concat(series, axis=1, join="outer").sort_index()
        panel.index = pd.DatetimeIndex(
            pd.to_datetime(panel.index.to_numpy(np.int64), unit="ms", utc=True), name="datetime"
        )
        return panel

    @staticmethod
    def _finest_source(symbol: str, frame: Timeframe, stored: Sequence[str]) -> Timeframe:
        finer = [parse_timeframe(name) for name in stored]
        usable = [source for source in finer if source.divides(frame)]
        if not usable:
            have = ", ".join(stored) or "none"
            raise NotFoundError(
                f"no {frame.name} candles for {symbol} and no finer timeframe to build them "
                f"from (stored: {have})",
                hint="Import or download candles for this symbol, e.g. "
                f"`cryptotrading market download --symbol {symbol} --timeframe 1m ...`.",
            )
        return max(usable)

    def _check_single_exchange(
        self, conn: Any, candles: Candles, symbol: str, frequency: str, exchange: str | None
    ) -> None:
        if exchange is not None or len(candles) < 2:
            return
        if bool((candles.timestamp[1:] > candles.timestamp[:-1]).all()):
            return
        self._several_exchanges(
            symbol, frequency, set(self._backend.exchanges(conn, symbol, frequency))
        )

    @staticmethod
    def _several_exchanges(symbol: str, frequency: str, names: set[str]) -> None:
        raise ValidationError(
            f"{symbol} {frequency} is stored for several exchanges: "
            + ", ".join(map(repr, sorted(names))),
            hint="Pass exchange= (CLI: --exchange) to choose one.",
        )

    def latest(
        self,
        symbols: Sequence[str] | str,
        *,
        timeframe: str | None = None,
        exchange: str | None = None,
    ) -> dict[str, LatestCandle]:
        """The newest candle per symbol (one index probe per symbol, no table scan).
        The archive is consulted only for months newer than the hot candle found, so
        a symbol whose recent candles are hot costs no file access."""
        names = [symbols] if isinstance(symbols, str) else list(symbols)
        frequency = None if timeframe is None else parse_timeframe(timeframe).name
        with self._connection(write=False) as conn:
            rows = self._backend.latest(conn, names, frequency, exchange)
        found = {row[0]: LatestCandle(*row) for row in rows}
        if self.archive_dir.is_dir():
            for name in names:
                hot = found.get(name)
                older = archived_latest(
                    self.archive_dir,
                    name,
                    frequency,
                    exchange,
                    None if hot is None else hot.timestamp,
                )
                if older is not None:
                    found[name] = LatestCandle(*older)
        return found

    def series(self) -> list[SeriesInfo]:
        """Every stored (symbol, timeframe, exchange) with its row count and span,
        hot and archived together (a candle caught in both by a crash mid-archive is
        counted twice until the next archive run)."""
        with self._connection(write=False) as conn:
            rows = self._backend.series(conn)
        merged = {(row[0], row[1], row[2]): SeriesInfo(*row) for row in rows}
        for key, (count, first, last) in archived_series(self.archive_dir).items():
            hot = merged.get(key)
            if hot is None:
                merged[key] = SeriesInfo(*key, count, first, last, count)
            else:
                merged[key] = hot._replace(
                    rows=hot.rows + count,
                    first=min(hot.first, first),
                    last=max(hot.last, last),
                    archived=count,
                )
        return [merged[key] for key in sorted(merged)]

    def newest_timestamp(self, symbol: str, timeframe: str, exchange: str) -> int | None:
        """Open time of the newest stored candle of one series, or None."""
        found = self.latest(symbol, timeframe=timeframe, exchange=exchange)
        return found[symbol].timestamp if symbol in found else None


class TimedCandles:
    """A :class:`CandleBackend` whose every call is timed by *timer*: slow ones are
    buffered as slow queries of the market store (``health`` lists them, ``health
    --record`` stores them in ``system_metrics``), described by the operation and
    the series it touched."""

    def __init__(self, inner: CandleBackend, timer: StatementTimer) -> None:
        self.inner = inner
        self.timer = timer

    def connection(self, *, write: bool) -> AbstractContextManager[Any]:
        return self.inner.connection(write=write)

    def write(
        self,
        symbol: str,
        frequency: str,
        exchange: str,
        candles: Candles,
        ingested_at: int,
        batch: BatchMark | None,
    ) -> int:
        label = f"write time_series {_series(symbol, frequency, exchange)} rows={len(candles)}"
        with self.timer.timed(label):
            return self.inner.write(symbol, frequency, exchange, candles, ingested_at, batch)

    def read(
        self,
        conn: Any,
        symbol: str,
        frequency: str,
        exchange: str | None,
        start: int | None,
        end: int | None,
    ) -> Candles:
        span = f"timestamp>={start} timestamp<{end}"
        with self.timer.timed(f"read time_series {_series(symbol, frequency, exchange)} {span}"):
            return self.inner.read(conn, symbol, frequency, exchange, start, end)

    def latest(
        self, conn: Any, symbols: Sequence[str], frequency: str | None, exchange: str | None
    ) -> list[tuple[Any, ...]]:
        label = f"latest time_series symbols={len(symbols)} frequency={frequency}"
        with self.timer.timed(label):
            return self.inner.latest(conn, symbols, frequency, exchange)

    def frequencies(self, conn: Any, symbol: str) -> list[str]:
        with self.timer.timed(f"frequencies time_series symbol={symbol}"):
            return self.inner.frequencies(conn, symbol)

    def exchanges(self, conn: Any, symbol: str, frequency: str) -> list[str]:
        with self.timer.timed(f"exchanges time_series symbol={symbol} frequency={frequency}"):
            return self.inner.exchanges(conn, symbol, frequency)

    def series(self, conn: Any) -> list[tuple[Any, ...]]:
        with self.timer.timed("series time_series (every series: rows, first, last)"):
            return self.inner.series(conn)

    def partitions(self, conn: Any) -> list[str]:
        with self.timer.timed("partitions time_series"):
            return self.inner.partitions(conn)

    def batch_totals(self, conn: Any, job_id: str) -> tuple[int, int]:
        with self.timer.timed(f"batch_totals ingestion_batches job_id={job_id}"):
            return self.inner.batch_totals(conn, job_id)


def _series(symbol: str, frequency: str, exchange: str | None) -> str:
    return f"symbol={symbol} frequency={frequency} exchange={exchange}"


def _candle_backend(engine: Engine, *, native: bool) -> CandleBackend:
    """The :class:`CandleBackend` of *engine*'s database (imported lazily: a SQLite
    user never loads psycopg, and the reverse)."""
    if engine.dialect.name == "postgresql":
        from cryptotrading.market.postgres_io import PostgresCandles

        return PostgresCandles(engine)
    from cryptotrading.market.sqlite_io import SqliteCandles

    return SqliteCandles(engine, native=native)
