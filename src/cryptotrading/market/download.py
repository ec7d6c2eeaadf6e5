"""Download candles with ccxt, page by page, resuming after an interruption.

Each page from ``fetch_ohlcv`` is written in its own transaction, so an interrupted
download keeps every page it finished. The next run resumes from the newest stored
candle (fetching it again: the last candle of a download is often still in progress,
and the idempotent upsert replaces it). ccxt's own rate limiter (``enableRateLimit``)
spaces the requests; network errors are retried with exponential backoff. Every run
is recorded in ``data_ingestion_jobs`` (``params.cursor`` = next candle to fetch).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ccxt

from cryptotrading.common.clock import iso_ms
from cryptotrading.errors import CryptotradingError, ValidationError
from cryptotrading.market.backend import BatchMark
from cryptotrading.market.exchange_errors import exchange_error
from cryptotrading.market.jobs import JobRecorder
from cryptotrading.market.store import MarketStore, TimeLike, to_epoch_ms
from cryptotrading.market.timeframes import parse_timeframe

#: Called after each committed page with (candles so far, percentage done).
Progress = Callable[[int, float], None]


@dataclass(frozen=True)
class DownloadResult:
    """Outcome of one download run."""

    exchange: str
    symbol: str
    timeframe: str
    rows: int
    changed: int
    pages: int
    resumed_from: int | None
    job_id: str


def make_exchange(exchange_id: str, **config: Any) -> ccxt.Exchange:
    """A ccxt exchange instance with rate limiting on."""
    cls = getattr(ccxt, exchange_id, None)
    if not isinstance(cls, type) or not issubclass(cls, ccxt.Exchange):
        raise ValidationError(
            f"unknown exchange {exchange_id!r}",
            hint="Use a ccxt exchange id such as binance, kraken, bitstamp or coinbaseexchange.",
        )
    exchange: ccxt.Exchange = cls({"enableRateLimit": True, **config})
    return exchange


def _fetch_page(
    exchange: ccxt.Exchange,
    symbol: str,
    timeframe: str,
    since: int,
    limit: int | None,
    params: dict[str, Any],
    *,
    retries: int,
    backoff: float,
    sleep: Callable[[float], None],
) -> list[list[Any]]:
    for attempt in range(retries + 1):
        try:
            rows: list[list[Any]] = exchange.fetch_ohlcv(symbol, timeframe, since, limit, params)
            return rows
        except ccxt.NetworkError as exc:
            if attempt == retries:
                raise CryptotradingError(
                    f"{exchange.id}: network error after {retries} retries: {exc}",
                    hint="Check the connection and run the same command again; "
                    "it resumes from the newest stored candle.",
                ) from exc
            sleep(backoff * 2**attempt)
        except ccxt.BaseError as exc:
            raise exchange_error(
                exchange.id,
                exc,
                unlisted=symbol,
                symbols="symbol",
                retry_hint="Run the same command again later; "
                "it resumes from the newest stored candle.",
            ) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def download_ohlcv(
    market: MarketStore,
    exchange: ccxt.Exchange,
    *,
    symbol: str,
    timeframe: str,
    since: TimeLike,
    until: TimeLike = None,
    limit: int | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Page through ``exchange.fetch_ohlcv`` from *since* to *until* (default now),
    resuming from the newest stored candle of this exchange, symbol and timeframe."""
    frame = parse_timeframe(timeframe)
    start = to_epoch_ms(since)
    if start is None:
        raise ValidationError("a start date is required", hint="Pass --since 2021-01-01.")
    end = to_epoch_ms(until)
    end = int(exchange.milliseconds()) if end is None else end
    if end <= start:
        raise ValidationError(
            f"--until ({iso_ms(end)}) is not after --since ({iso_ms(start)})",
            hint="Give an end date later than the start date.",
        )
    start = frame.ceil(start)
    newest = market.newest_timestamp(symbol, frame.name, exchange.id)
    resumed_from = newest if newest is not None and start <= newest < end else None
    cursor = resumed_from if resumed_from is not None else start
    job = JobRecorder(
        market.stores,
        job_type="download",
        source=exchange.id,
        symbol=symbol,
        timeframe=frame.name,
        params={"since": start, "until": end, "cursor": cursor, "resumed_from": resumed_from},
        committed=market.committed_batches,
    )
    rows_total = changed = pages = unchanged = 0
    try:
        while cursor < end:
            page = _fetch_page(
                exchange, symbol, frame.name, cursor, limit, {},
                retries=retries, backoff=backoff, sleep=sleep,
            )  # fmt: skip
            page = [row for row in page if cursor <= row[0] < end]
            if not page:
                break
            result = market.write_ohlcv(
                page,
                symbol=symbol,
                timeframe=frame.name,
                exchange=exchange.id,
                batch=BatchMark(job.job_id, pages),
            )
            rows_total += result.rows
            changed += result.changed
            unchanged += result.unchanged
            pages += 1
            cursor = frame.next_open(int(page[-1][0]))
            percentage = 100.0 * (min(cursor, end) - start) / (end - start)
            job.progress(rows_total, percentage, cursor=cursor, pages=pages, unchanged=unchanged)
            if progress is not None:
                progress(rows_total, percentage)
    except BaseException as exc:
        job.fail(exc, cancelled=isinstance(exc, KeyboardInterrupt))
        raise
    job.finish(cursor=cursor, pages=pages, unchanged=unchanged)
    return DownloadResult(
        exchange.id, symbol, frame.name, rows_total, changed, pages, resumed_from, job.job_id
    )
