"""Read-only price look-ups over the market store's ``time_series`` candles.

Candles are float64 (ccxt convention); a price leaves this module as the exact
Decimal of the float's shortest text (``19565.47``, not its binary expansion).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine, Select, select

from cryptotrading.common.clock import as_utc
from cryptotrading.db import READ_ONLY, translate_errors
from cryptotrading.errors import NotFoundError
from cryptotrading.models.market import TimeSeries


@dataclass(frozen=True)
class Candle:
    """One OHLCV candle with exact-decimal prices."""

    symbol: str
    timeframe: str
    exchange: str
    timestamp: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    @property
    def time(self) -> datetime:
        """The candle's open time (UTC)."""
        return from_ms(self.timestamp)


def to_ms(when: datetime) -> int:
    """Epoch milliseconds of *when* (naive = UTC)."""
    return int(as_utc(when).timestamp() * 1000)


def from_ms(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp / 1000, tz=UTC)


def _decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def _filtered(
    query: Select[tuple[TimeSeries]], symbol: str, timeframe: str | None, exchange: str | None
) -> Select[tuple[TimeSeries]]:
    query = query.where(TimeSeries.symbol == symbol)
    if timeframe is not None:
        query = query.where(TimeSeries.frequency == timeframe)
    if exchange is not None:
        query = query.where(TimeSeries.exchange == exchange)
    return query


def _one(engine: Engine, query: Select[tuple[TimeSeries]]) -> Candle | None:
    with (
        translate_errors("market store"),
        engine.connect().execution_options(**{READ_ONLY: True}) as connection,
    ):
        row = connection.execute(query.limit(1)).first()
    if row is None:
        return None
    return Candle(
        symbol=row.symbol,
        timeframe=row.frequency,
        exchange=row.exchange,
        timestamp=int(row.timestamp),
        open=_decimal(row.open),
        high=_decimal(row.high),
        low=_decimal(row.low),
        close=_decimal(row.close),
        volume=_decimal(row.volume),
    )


def latest_candle(
    engine: Engine,
    symbol: str,
    *,
    timeframe: str | None = None,
    exchange: str | None = None,
    as_of: datetime | None = None,
) -> Candle:
    """The newest candle of *symbol* (opened at or before *as_of*, when given)."""
    query = _filtered(select(TimeSeries), symbol, timeframe, exchange)
    if as_of is not None:
        query = query.where(TimeSeries.timestamp <= to_ms(as_of))
    candle = _one(engine, query.order_by(TimeSeries.timestamp.desc(), TimeSeries.frequency))
    if candle is None:
        when = f" at or before {as_of.isoformat()}" if as_of else ""
        raise NotFoundError(
            f"no {timeframe or ''} candle of {symbol} in the market store{when}".replace("  ", " "),
            hint="Ingest candles for the symbol first (`cryptotrading market ...`).",
        )
    return candle


def latest_price(
    engine: Engine,
    symbol: str,
    *,
    timeframe: str | None = None,
    exchange: str | None = None,
    as_of: datetime | None = None,
) -> Decimal:
    """The close of :func:`latest_candle` (the mark-to-market price)."""
    return latest_candle(engine, symbol, timeframe=timeframe, exchange=exchange, as_of=as_of).close


def candle_at_or_after(
    engine: Engine,
    symbol: str,
    when: datetime,
    *,
    timeframe: str | None = None,
    exchange: str | None = None,
) -> Candle:
    """The first candle of *symbol* opened at or after *when*."""
    query = _filtered(select(TimeSeries), symbol, timeframe, exchange)
    query = query.where(TimeSeries.timestamp >= to_ms(when))
    candle = _one(engine, query.order_by(TimeSeries.timestamp.asc(), TimeSeries.frequency))
    if candle is None:
        raise NotFoundError(
            f"no candle of {symbol} at or after {when.isoformat()} in the market store",
            hint="The horizon is not reached yet, or candles are missing: ingest them first.",
        )
    return candle
