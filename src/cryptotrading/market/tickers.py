"""ccxt tickers per source and their cross-exchange aggregate.

:func:`store_tickers` writes each ccxt ticker to ``market_data_sources`` (the quote of
one source) and ``market_data`` (the price snapshot). :func:`aggregate` combines the
newest quote of every source for a symbol into ``aggregated_market_data``: quotes older
than ``max_age`` are *stale* and quotes further than ``outlier_pct`` percent from the
cross-source median are *outliers* (checked only with 3+ fresh sources, since with two
the median cannot tell which one is wrong); both are excluded and counted. The
aggregate has the mean price, the volume-weighted price (by 24h base volume), min,
max, the spread between sources ``(max - min) / mean`` in percent and total volume.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from cryptotrading.common.views import AsDict
from cryptotrading.db.session import unit_of_work
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.market.exchange_errors import exchange_error
from cryptotrading.models.market import AggregatedMarketData, MarketData, MarketDataSource
from cryptotrading.stores import Stores


def _number(ticker: Mapping[str, Any], key: str) -> float | None:
    value = ticker.get(key)
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValidationError(
            f"ticker {ticker.get('symbol')!r}: {key} = {value!r} is not a finite, "
            "non-negative number; nothing was written",
            hint="Pass tickers as ccxt returns them (fetch_ticker / fetch_tickers).",
        )
    return number


def _timestamp(ticker: Mapping[str, Any], now: datetime) -> datetime:
    value = ticker.get("timestamp")
    if value is None:
        return now
    return datetime.fromtimestamp(float(value) / 1000, UTC)


def _source_row(source: str, ticker: Mapping[str, Any], now: datetime) -> MarketDataSource:
    symbol = ticker.get("symbol")
    price = _number(ticker, "last") or _number(ticker, "close")
    if not symbol or not price:
        raise ValidationError(
            f"ticker from {source!r} has no symbol or no positive last price: "
            f"symbol={symbol!r}; nothing was written",
            hint="Each ticker needs 'symbol' and 'last' (ccxt unified ticker).",
        )
    base_volume = _number(ticker, "baseVolume")
    quote_volume = _number(ticker, "quoteVolume")
    return MarketDataSource(
        source=source,
        symbol=str(symbol),
        price=price,
        bid=_number(ticker, "bid"),
        ask=_number(ticker, "ask"),
        volume_24h=base_volume,
        liquidity=quote_volume if quote_volume is not None else None,
        timestamp=_timestamp(ticker, now),
        info=dict(ticker.get("info") or {}),
    )


def store_tickers(
    stores: Stores,
    source: str,
    tickers: Iterable[Mapping[str, Any]] | Mapping[str, Any],
    *,
    received_at: datetime | None = None,
) -> int:
    """Store ccxt tickers of one *source* (a list, or ccxt's ``{symbol: ticker}``) in
    ``market_data_sources`` and ``market_data``, in one transaction. A ticker without
    a timestamp is dated *received_at* (default: now)."""
    if not source or len(source) > 64:
        raise ValidationError(f"invalid source {source!r}", hint="Use the ccxt exchange id.")
    items = list(tickers.values()) if isinstance(tickers, Mapping) else list(tickers)
    if items and all(isinstance(value, Mapping) and "symbol" not in value for value in items):
        raise ValidationError("tickers must be ccxt ticker dicts", hint="Use fetch_ticker().")
    now = received_at or datetime.now(UTC)
    rows = [_source_row(source, ticker, now) for ticker in items]
    snapshots = [
        MarketData(
            symbol=row.symbol,
            price=row.price,
            volume_24h=row.volume_24h,
            high_24h=_number(ticker, "high"),
            low_24h=_number(ticker, "low"),
            change_24h_pct=_signed(ticker, "percentage"),
            bid=row.bid,
            ask=row.ask,
            source=source,
            timestamp=row.timestamp,
        )
        for row, ticker in zip(rows, items, strict=True)
    ]
    with unit_of_work(stores.engine(stores.app), "app store") as session:
        session.add_all([*rows, *snapshots])
    return len(rows)


def fetch_and_store(
    stores: Stores, exchanges: Iterable[Any], symbols: Iterable[str]
) -> dict[str, list[str]]:
    """``fetch_ticker`` every symbol on every ccxt exchange and store the quotes;
    returns ``{exchange id: [symbols stored]}``. Exchange errors become
    :class:`~cryptotrading.errors.CryptotradingError`; nothing of that exchange is stored."""
    import ccxt

    wanted = list(symbols)
    stored: dict[str, list[str]] = {}
    for exchange in exchanges:
        try:
            tickers = [exchange.fetch_ticker(symbol) for symbol in wanted]
        except ccxt.BaseError as exc:
            raise exchange_error(
                exchange.id,
                exc,
                unlisted=f"one of {', '.join(wanted)}",
                symbols="symbols",
                retry_hint="Check the network and the exchange status, then retry.",
            ) from exc
        store_tickers(stores, exchange.id, tickers)
        stored[exchange.id] = [str(t["symbol"]) for t in tickers]
    return stored


def _signed(ticker: Mapping[str, Any], key: str) -> float | None:
    value = ticker.get(key)
    return None if value is None or not math.isfinite(float(value)) else float(value)


@dataclass(frozen=True)
class Aggregate(AsDict):
    """One cross-exchange aggregate (as written to ``aggregated_market_data``)."""

    symbol: str
    avg_price: float
    vwap: float | None
    min_price: float
    max_price: float
    spread_pct: float
    total_volume: float | None
    sources_count: int
    stale_excluded: int
    outliers_excluded: int
    sources: list[str]
    timestamp: datetime


def _newest_quotes(stores: Stores, symbol: str) -> list[MarketDataSource]:
    newest = (
        select(MarketDataSource.source, func.max(MarketDataSource.timestamp).label("ts"))
        .where(MarketDataSource.symbol == symbol)
        .group_by(MarketDataSource.source)
        .subquery()
    )
    query = (
        select(MarketDataSource)
        .join(
            newest,
            (MarketDataSource.source == newest.c.source)
            & (MarketDataSource.timestamp == newest.c.ts),
        )
        .where(MarketDataSource.symbol == symbol)
        .order_by(MarketDataSource.source, MarketDataSource.id.desc())
    )
    with unit_of_work(stores.engine(stores.app), "app store") as session:
        rows = session.scalars(query).all()
    seen: dict[str, MarketDataSource] = {}
    for row in rows:
        seen.setdefault(row.source, row)
    return list(seen.values())


def aggregate(
    stores: Stores,
    symbol: str,
    *,
    now: datetime | None = None,
    max_age: timedelta | float = timedelta(minutes=5),
    outlier_pct: float = 5.0,
) -> Aggregate:
    """Aggregate the newest quote of every source and store it. *max_age*: a
    timedelta or seconds (positive, at most ten years); *outlier_pct*: positive."""
    max_age = _max_age(max_age)
    if not math.isfinite(outlier_pct) or outlier_pct <= 0:
        raise ValidationError(
            f"outlier percentage {outlier_pct!r} is not a positive number",
            hint="Give --outlier-pct as a percentage such as 5.",
        )
    now = now or datetime.now(UTC)
    quotes = _newest_quotes(stores, symbol)
    if not quotes:
        raise NotFoundError(
            f"no quotes stored for {symbol}",
            hint="Store tickers first: `cryptotrading market tickers --exchange ... --symbol ...`.",
        )
    fresh = [q for q in quotes if now - q.timestamp <= max_age]
    stale = len(quotes) - len(fresh)
    if not fresh:
        raise ValidationError(
            f"every quote of {symbol} is older than {max_age} (stale: {stale})",
            hint="Fetch fresh tickers, or raise the maximum age (--max-age).",
        )
    kept = fresh
    if len(fresh) >= 3:
        prices = sorted(q.price for q in fresh)
        middle = len(prices) // 2
        median = prices[middle] if len(prices) % 2 else (prices[middle - 1] + prices[middle]) / 2
        kept = [q for q in fresh if abs(q.price - median) / median * 100 <= outlier_pct]
    outliers = len(fresh) - len(kept)
    prices = [q.price for q in kept]
    volumes = [q.volume_24h for q in kept if q.volume_24h]
    weighted = [(q.price, q.volume_24h) for q in kept if q.volume_24h]
    mean = sum(prices) / len(prices)
    vwap = sum(p * v for p, v in weighted) / sum(v for _, v in weighted) if weighted else None
    result = Aggregate(
        symbol=symbol,
        avg_price=mean,
        vwap=vwap,
        min_price=min(prices),
        max_price=max(prices),
        spread_pct=(max(prices) - min(prices)) / mean * 100,
        total_volume=sum(volumes) if volumes else None,
        sources_count=len(kept),
        stale_excluded=stale,
        outliers_excluded=outliers,
        sources=sorted(q.source for q in kept),
        timestamp=now,
    )
    with unit_of_work(stores.engine(stores.app), "app store") as session:
        session.add(
            AggregatedMarketData(
                **{k: v for k, v in result.as_dict().items() if k != "sources"},
            )
        )
    return result


_MAX_AGE_LIMIT = timedelta(days=3650)


def _max_age(value: timedelta | float) -> timedelta:
    """*value* (a timedelta or seconds) as a timedelta in (0, ten years]."""
    if not isinstance(value, timedelta):
        seconds = float(value)
        if not math.isfinite(seconds) or not 0 < seconds <= _MAX_AGE_LIMIT.total_seconds():
            raise ValidationError(
                f"maximum age {value!r} s is not between 0 and ten years",
                hint="Give --max-age in seconds, e.g. 300.",
            )
        value = timedelta(seconds=seconds)
    if not timedelta(0) < value <= _MAX_AGE_LIMIT:
        raise ValidationError(
            f"maximum age {value} is not between 0 and ten years",
            hint="Give --max-age in seconds, e.g. 300.",
        )
    return value
