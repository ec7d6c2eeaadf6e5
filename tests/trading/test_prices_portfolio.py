"""Price look-ups over real candles; marking, unpriced symbols, exchanges, closes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.stores import Stores
from cryptotrading.trading import (
    candle_at_or_after,
    fill_order,
    get_position,
    latest_candle,
    latest_price,
    list_positions,
    submit_order,
    summarize,
)
from tests.helpers import insert_candle, load_candles, make_user

T0 = datetime(2021, 1, 4, tzinfo=UTC)


def test_price_lookups_on_real_candles(stores: Stores, market_data_dir: Path) -> None:
    market = stores.engine(stores.market)
    load_candles(market, market_data_dir, "BTC/USDT", "1h")
    last = latest_candle(market, "BTC/USDT")
    assert last.time == datetime(2021, 7, 17, 20, tzinfo=UTC)
    first = candle_at_or_after(market, "BTC/USDT", datetime(2020, 1, 1, tzinfo=UTC))
    # SOURCES.md: first BTC row [1606780800000, 19695.87, 19720.0, 19479.8, 19565.47, ...]
    assert (first.timestamp, first.open, first.close) == (
        1606780800000,
        Decimal("19695.87"),
        Decimal("19565.47"),
    )
    assert first.high == Decimal("19720.0") and first.low == Decimal("19479.8")
    assert latest_price(market, "BTC/USDT", as_of=first.time) == Decimal("19565.47")
    # the outage 2020-12-21 15:00-17:00 UTC: the next candle opens at 18:00
    gap = candle_at_or_after(market, "BTC/USDT", datetime(2020, 12, 21, 15, 30, tzinfo=UTC))
    assert gap.time == datetime(2020, 12, 21, 18, tzinfo=UTC)
    with pytest.raises(NotFoundError, match="at or after"):
        candle_at_or_after(market, "BTC/USDT", last.time + timedelta(minutes=1))
    with pytest.raises(NotFoundError, match="no 5m candle of BTC/USDT"):
        latest_candle(market, "BTC/USDT", timeframe="5m")
    with pytest.raises(NotFoundError, match="at or before"):
        latest_price(market, "BTC/USDT", as_of=datetime(2019, 1, 1, tzinfo=UTC))


def test_summary_with_unpriced_exchange_and_closed_positions(stores: Stores) -> None:
    app, market = stores.engine(stores.app), stores.engine(stores.market)
    user = make_user(app, "erin")
    insert_candle(market, "ETH/USDT", T0, close=1000.0)
    insert_candle(market, "ETH/USDT", T0, close=1010.0, exchange="binance")

    def trade(symbol: str, side: str, amount: str, price: str, exchange: str = "") -> None:
        order = submit_order(
            app,
            user_id=user,
            symbol=symbol,
            side=side,
            order_type="market",
            amount=amount,
            exchange=exchange,
        ).order.order_id
        fill_order(app, order, price=price, amount=amount, fee="1", time=T0)

    trade("ETH/USDT", "buy", "2", "900", exchange="binance")  # priced by binance candles
    trade("ETH/USDT", "buy", "1", "950")  # priced by exchange-less candles
    trade("DOGE/USDT", "buy", "1000", "0.01")  # no candle at all
    trade("LTC/USDT", "buy", "3", "150")
    trade("LTC/USDT", "sell", "3", "160")  # closed: realized 30
    summary = summarize(app, market, user, starting_cash="5000")
    by_key = {(p.symbol, p.exchange): p for p in summary.positions}
    assert by_key[("ETH/USDT", "binance")].last_price == Decimal("1010.0")
    assert by_key[("ETH/USDT", "")].last_price == Decimal("1000.0")
    assert summary.unpriced == ["DOGE/USDT"]
    assert by_key[("LTC/USDT", "")].quantity == 0
    assert summary.realized_pnl == Decimal(30)
    assert summary.unrealized_pnl == 2 * Decimal(110) + Decimal(50)
    # cash: 5000 - 1800 - 950 - 10 - 450 + 480 - 5 fees; DOGE counted at cost (10)
    assert summary.cash == Decimal(5000 - 1800 - 950 - 10 - 450 + 480 - 5)
    assert summary.equity == summary.cash + Decimal(2020) + Decimal(1000) + Decimal(10)
    assert [p.symbol for p in list_positions(app, user)] == ["DOGE/USDT", "ETH/USDT", "ETH/USDT"]
    assert len(list_positions(app, user, include_closed=True)) == 4
    closed = get_position(app, user, "LTC/USDT")
    assert closed.closed_at == T0 and closed.average_entry_price == 0
    with pytest.raises(ValidationError, match="starting cash"):
        summarize(app, market, user, starting_cash="lots")
    with pytest.raises(NotFoundError, match="user 999"):
        summarize(app, market, 999)
    with pytest.raises(NotFoundError, match="no position"):
        get_position(app, user, "XRP/USDT")


def test_flip_through_the_database_moves_opened_at(stores: Stores) -> None:
    app = stores.engine(stores.app)
    user = make_user(app, "frank")
    times = [T0 + timedelta(hours=h) for h in range(3)]
    for side, amount, price, when in (
        ("buy", "1", "100", times[0]),
        ("sell", "3", "110", times[1]),
        ("buy", "2", "90", times[2]),
    ):
        order = submit_order(
            app, user_id=user, symbol="SOL/USDT", side=side, order_type="market", amount=amount
        ).order.order_id
        result = fill_order(app, order, price=price, amount=amount, time=when)
        if when == times[1]:
            assert result.position.quantity == -2
            assert result.position.opened_at == times[1]
            assert result.position.realized_pnl == 10
    position = get_position(app, user, "SOL/USDT")
    assert position.quantity == 0 and position.realized_pnl == 50
    assert position.closed_at == times[2] and position.version == 3
