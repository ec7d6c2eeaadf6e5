"""P&L against an independent exact (rational) computation, with Hypothesis."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from cryptotrading.stores import Stores
from cryptotrading.trading import fill_order, get_position, submit_order, summarize
from cryptotrading.trading.positions import Fill, PositionState, apply_fill, mark, replay
from tests.helpers import insert_candle, make_user
from tests.trading.exact_pnl import ExactBook, rounding_bound

T0 = datetime(2021, 3, 1, tzinfo=UTC)

amounts = st.decimals(min_value="0.00000001", max_value="50", places=8)
prices = st.decimals(min_value="0.01", max_value="60000", places=2)
fees = st.decimals(min_value="0", max_value="5", places=8)
fills = st.builds(Fill, st.sampled_from(["buy", "sell"]), amounts, prices, fees)


def _random_fills(rng: random.Random, count: int) -> list[Fill]:
    """Fills around a random walk, with now and then a flip-sized order."""
    price = Decimal(rng.randint(100, 60000))
    out = []
    for _ in range(count):
        price = max(Decimal("0.01"), price + Decimal(rng.randint(-5000, 5000)) / 100)
        amount = Decimal(rng.randint(1, 10**9)) / 10**8
        fee = (price * amount / 1000).quantize(Decimal("1e-8"))
        out.append(Fill(rng.choice(["buy", "sell"]), amount, price, fee))
    return out


def _assert_matches(state: PositionState, book: ExactBook, sequence: list[Fill]) -> None:
    volume = sum((f.amount for f in sequence), start=Decimal(0))
    bound = rounding_bound(len(sequence), volume)
    # quantity and fees involve no division: exactly equal
    assert Fraction(state.quantity) == book.quantity
    assert Fraction(state.fees_paid) == book.fees
    # realized P&L and average price: within the proven rounding bound
    assert abs(Fraction(state.realized_pnl) - book.realized) <= bound
    assert abs(Fraction(state.average_entry_price) - book.average()) <= bound
    # every stored number fits NUMERIC(38, 18)
    for value in (state.quantity, state.average_entry_price, state.realized_pnl):
        assert value == value.quantize(Decimal("1e-18"))
    # cash identity: cash + marked value == realized + unrealized (fees apart)
    last = sequence[-1].price
    _value, unrealized = mark(state.quantity, state.average_entry_price, last)
    exact_total = book.cash + book.quantity * Fraction(last)
    assert abs(Fraction(state.realized_pnl + unrealized) - exact_total) <= 2 * bound + Fraction(
        1, 10**18
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(fills, min_size=1, max_size=200))
def test_pnl_matches_exact_rationals(sequence: list[Fill]) -> None:
    book = ExactBook()
    state = PositionState()
    for fill in sequence:
        state = apply_fill(state, fill)
        book.fill(fill.side, fill.amount, fill.price, fill.fee)
        assert Fraction(state.quantity) == book.quantity
    _assert_matches(state, book, sequence)


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_pnl_over_thousands_of_random_fills(seed: int) -> None:
    sequence = _random_fills(random.Random(seed), 3000)
    book = ExactBook()
    for fill in sequence:
        book.fill(fill.side, fill.amount, fill.price, fill.fee)
    _assert_matches(replay(sequence), book, sequence)


def test_round_trip_realizes_exactly_the_cash_flow() -> None:
    """Buy in pieces, sell all: realized == proceeds - cost to the last digit when no
    division is inexact."""
    sequence = [
        Fill("buy", Decimal("0.5"), Decimal("20000"), Decimal("1")),
        Fill("buy", Decimal("1.5"), Decimal("24000"), Decimal("3")),
        Fill("sell", Decimal("1"), Decimal("25000"), Decimal("2")),
        Fill("sell", Decimal("3"), Decimal("22000"), Decimal("6")),  # flips to short 2
        Fill("buy", Decimal("2"), Decimal("21000"), Decimal("4")),  # closes the short
    ]
    state = replay(sequence)
    # long 2 @ 23000; sell 1 @ 25000 -> +2000; sell 1 @ 22000 -> -1000; short 2 @ 22000;
    # buy 2 @ 21000 -> +2000
    assert state == PositionState(Decimal(0), Decimal(0), Decimal(3000), Decimal(16))


def test_flip_long_to_short_and_back() -> None:
    state = apply_fill(PositionState(), Fill("buy", Decimal(1), Decimal(100)))
    state = apply_fill(state, Fill("sell", Decimal(3), Decimal(110)))
    assert state == PositionState(Decimal(-2), Decimal(110), Decimal(10), Decimal(0))
    assert mark(state.quantity, state.average_entry_price, Decimal(100)) == (
        Decimal(-200),
        Decimal(20),
    )
    state = apply_fill(state, Fill("buy", Decimal(5), Decimal(90)))
    assert state == PositionState(Decimal(3), Decimal(90), Decimal(50), Decimal(0))


@pytest.mark.slow
@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_stored_positions_match_exact_computation(stores: Stores, seed: int) -> None:
    """Hundreds of fills through orders into the database (one transaction each):
    the stored position equals the pure computation and the exact one."""
    engine: Engine = stores.engine(stores.app)
    user = make_user(engine, f"pnl{seed}-{uuid.uuid4().hex[:8]}")
    sequence = _random_fills(random.Random(seed), 400)
    total = {
        side: sum((f.amount for f in sequence if f.side == side), start=Decimal(0))
        for side in ("buy", "sell")
    }
    orders = {
        side: submit_order(
            engine,
            user_id=user,
            symbol="BTC/USDT",
            side=side,
            order_type="market",
            amount=total[side] or "1",
        ).order.order_id
        for side in ("buy", "sell")
    }
    book = ExactBook()
    for fill in sequence:
        fill_order(
            engine, orders[fill.side], price=fill.price, amount=fill.amount, fee=fill.fee, time=T0
        )
        book.fill(fill.side, fill.amount, fill.price, fill.fee)
    stored = get_position(engine, user, "BTC/USDT")
    state = PositionState(
        stored.quantity, stored.average_entry_price, stored.realized_pnl, stored.fees_paid
    )
    assert state == replay(sequence)
    _assert_matches(state, book, sequence)
    assert stored.version == len(sequence)
    summary = summarize(engine, None, user, starting_cash="100000")
    assert summary.fees_paid == state.fees_paid
    assert summary.realized_pnl == state.realized_pnl


def test_summary_marks_to_market_from_the_market_store(stores: Stores) -> None:
    """Equity = starting cash + realized - fees + unrealized, priced from time_series."""
    app = stores.engine(stores.app)
    market = stores.engine(stores.market)
    user = make_user(app, "marker")
    insert_candle(market, "ETH/USDT", T0, close=1500.5)
    insert_candle(market, "BTC/USDT", T0, close=45000.25)
    buy = submit_order(
        app, user_id=user, symbol="BTC/USDT", side="buy", order_type="market", amount="2"
    ).order.order_id
    sell = submit_order(
        app, user_id=user, symbol="ETH/USDT", side="sell", order_type="market", amount="10"
    ).order.order_id
    fill_order(app, buy, price="44000", amount="2", fee="8.8", time=T0)
    fill_order(app, sell, price="1600", amount="10", fee="1.6", time=T0)
    summary = summarize(app, market, user, starting_cash="100000")
    by_symbol = {p.symbol: p for p in summary.positions}
    assert by_symbol["BTC/USDT"].market_value == Decimal("90000.5")
    assert by_symbol["BTC/USDT"].unrealized_pnl == Decimal("2000.5")
    assert by_symbol["ETH/USDT"].market_value == Decimal("-15005")
    assert by_symbol["ETH/USDT"].unrealized_pnl == Decimal("995")
    assert summary.unrealized_pnl == Decimal("2995.5")
    assert summary.fees_paid == Decimal("10.4")
    assert summary.equity == Decimal("100000") + Decimal("2995.5") - Decimal("10.4")
    assert summary.gross_exposure == Decimal("105005.5")
    assert summary.net_exposure == Decimal("74995.5")
    stored = get_position(app, user, "BTC/USDT")
    assert stored.last_price == Decimal("45000.25") and stored.unrealized_pnl == Decimal("2000.5")
    assert summary.unpriced == []
