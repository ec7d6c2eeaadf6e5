"""The order state machine (every event from every state), fills, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from cryptotrading.db import unit_of_work
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.models.trading import ORDER_STATUSES, PortfolioPosition, TradingOrder
from cryptotrading.trading import orders as o

T0 = datetime(2021, 1, 4, 12, 0, tzinfo=UTC)


def _submit(engine: Engine, user_id: int, **extra: Any) -> str:
    fields: dict[str, Any] = {
        "user_id": user_id,
        "symbol": "BTC/USDT",
        "side": "buy",
        "order_type": "limit",
        "amount": "2",
        "price": "30000",
    }
    fields.update(extra)
    return o.submit_order(engine, **fields).order.order_id


def _order_in(engine: Engine, user_id: int, status: str) -> str:
    """A fresh order brought into *status* by legal events."""
    order_id = _submit(engine, user_id)
    if status == "new":
        return order_id
    if status == "rejected":
        o.reject_order(engine, order_id)
        return order_id
    if status == "cancelled":
        o.cancel_order(engine, order_id)
        return order_id
    o.accept_order(engine, order_id)
    if status == "partially_filled":
        o.fill_order(engine, order_id, price="29990", amount="0.5", time=T0)
    elif status == "filled":
        o.fill_order(engine, order_id, price="29990", amount="2", time=T0)
    elif status == "expired":
        o.expire_order(engine, order_id)
    return order_id


def _snapshot(engine: Engine) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    with unit_of_work(engine) as session:
        orders = [o.order_as_dict(r) for r in session.execute(select(TradingOrder)).scalars()]
        positions = [
            (p.symbol, p.quantity, p.average_entry_price, p.realized_pnl, p.fees_paid, p.version)
            for p in session.execute(select(PortfolioPosition)).scalars()
        ]
    return sorted(orders, key=lambda d: d["order_id"]), positions


def _apply(engine: Engine, order_id: str, event: str) -> str:
    if event == "fill":
        return o.fill_order(engine, order_id, price="29980", amount="0.25", time=T0).order.status
    return o.transition(engine, order_id, event).status


@pytest.mark.parametrize("status", ORDER_STATUSES)
@pytest.mark.parametrize("event", sorted(o.EVENTS))
def test_every_event_from_every_state(
    app_engine: Engine, user_id: int, status: str, event: str
) -> None:
    order_id = _order_in(app_engine, user_id, status)
    assert o.get_order(app_engine, order_id).status == status
    allowed, target = o.EVENTS[event]
    if status in allowed:
        new_status = _apply(app_engine, order_id, event)
        expected = "partially_filled" if event == "fill" else target
        assert new_status == expected
        assert new_status in o.LEGAL_TRANSITIONS[status]
        stored = o.get_order(app_engine, order_id)
        assert stored.status == expected
        assert (stored.closed_at is not None) == (expected in o.TERMINAL)
    else:
        before = _snapshot(app_engine)
        with pytest.raises(ValidationError) as caught:
            _apply(app_engine, order_id, event)
        assert f"is {status}: cannot {event}" in caught.value.message
        assert "Nothing was changed" in caught.value.hint
        assert _snapshot(app_engine) == before


@pytest.mark.parametrize("status", ["new", "open", "partially_filled"])
def test_fill_of_the_remaining_amount_completes_the_order(
    app_engine: Engine, user_id: int, status: str
) -> None:
    order_id = _order_in(app_engine, user_id, status)
    remaining = (
        o.get_order(app_engine, order_id).amount - o.get_order(app_engine, order_id).filled_amount
    )
    result = o.fill_order(app_engine, order_id, price="30000", amount=remaining, time=T0)
    assert result.order.status == "filled"
    assert result.order.filled_amount == Decimal(2)
    assert result.order.closed_at == T0
    assert result.position.quantity == Decimal(2)


def test_terminal_states_have_no_way_out() -> None:
    assert set(o.LEGAL_TRANSITIONS) == set(ORDER_STATUSES)
    for status in o.TERMINAL:
        assert o.LEGAL_TRANSITIONS[status] == frozenset()
        assert all(status not in allowed for allowed, _ in o.EVENTS.values())


def test_overfill_is_refused_and_nothing_changes(app_engine: Engine, user_id: int) -> None:
    order_id = _submit(app_engine, user_id, order_type="market", price=None, amount="1")
    o.fill_order(app_engine, order_id, price="30000", amount="0.6", fee="0.1", time=T0)
    before = _snapshot(app_engine)
    with pytest.raises(ValidationError, match="would overfill") as caught:
        o.fill_order(app_engine, order_id, price="30000", amount="0.400000000000000001")
    assert "remaining 0.4" in caught.value.message
    assert _snapshot(app_engine) == before
    done = o.fill_order(app_engine, order_id, price="30100", amount="0.4", time=T0)
    assert done.order.status == "filled"
    assert done.order.filled_amount == Decimal(1)
    assert done.order.average_fill_price == Decimal("30040")
    with pytest.raises(ValidationError, match="is filled: cannot fill"):
        o.fill_order(app_engine, order_id, price="30000", amount="0.000000000000000001")


def test_fills_are_stored_as_exact_strings(app_engine: Engine, user_id: int) -> None:
    order_id = _submit(app_engine, user_id, order_type="market", price=None, amount="0.3")
    o.fill_order(app_engine, order_id, price="29000.1", amount="0.1", fee="0.0029", time=T0)
    o.fill_order(app_engine, order_id, price="29000.2", amount="0.2", fee="0.0058", time=T0)
    order = o.get_order(app_engine, order_id)
    assert order.fills == [
        {"price": "29000.1", "amount": "0.1", "fee": "0.0029", "time": T0.isoformat()},
        {"price": "29000.2", "amount": "0.2", "fee": "0.0058", "time": T0.isoformat()},
    ]
    assert order.fee == Decimal("0.0087")
    # (29000.1*0.1 + 29000.2*0.2) / 0.3 = 29000.1666... rounded half-even at 18 places
    assert order.average_fill_price == Decimal("29000.166666666666666667")


@pytest.mark.parametrize(
    ("side", "price"), [("buy", "30000.01"), ("sell", "29999.99")], ids=["buy", "sell"]
)
def test_limit_orders_only_fill_at_their_price_or_better(
    app_engine: Engine, user_id: int, side: str, price: str
) -> None:
    order_id = _submit(app_engine, user_id, side=side)
    before = _snapshot(app_engine)
    with pytest.raises(ValidationError, match="limit price 30000"):
        o.fill_order(app_engine, order_id, price=price, amount="1")
    assert _snapshot(app_engine) == before


def test_client_order_id_makes_submit_idempotent(app_engine: Engine, user_id: int) -> None:
    first = o.submit_order(
        app_engine,
        user_id=user_id,
        symbol="ETH/USDT",
        side="sell",
        order_type="stop_limit",
        amount="1.5",
        price="700",
        stop_price="710",
        client_order_id="bot-42",
    )
    retry = o.submit_order(
        app_engine,
        user_id=user_id,
        symbol="ETH/USDT",
        side="sell",
        order_type="stop_limit",
        amount="1.50",
        price="700.0",
        stop_price="710",
        client_order_id="bot-42",
    )
    assert first.created and not retry.created
    assert retry.order.order_id == first.order.order_id
    with pytest.raises(ValidationError, match="already names order"):
        o.submit_order(
            app_engine,
            user_id=user_id,
            symbol="ETH/USDT",
            side="sell",
            order_type="stop_limit",
            amount="2",
            price="700",
            stop_price="710",
            client_order_id="bot-42",
        )
    with unit_of_work(app_engine) as session:
        assert session.scalar(select(func.count()).select_from(TradingOrder)) == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"order_type": "market"}, "takes no limit price"),
        ({"price": None}, "needs limit price"),
        ({"order_type": "stop", "price": None}, "needs stop price"),
        ({"order_type": "stop_limit"}, "needs stop price"),
        ({"stop_price": "1"}, "takes no stop price"),
        ({"amount": 1.5}, "float 1.5 given"),
        ({"amount": "0"}, "must be positive"),
        ({"amount": "-1"}, "must be positive"),
        ({"amount": "abc"}, "not a decimal number"),
        ({"amount": "NaN"}, "not a finite"),
        ({"amount": "0.0000000000000000001"}, "more than 18 decimal places"),
        ({"amount": "1e25"}, "too large"),
        ({"price": "-5"}, "must be positive"),
        ({"symbol": "BTCUSDT"}, "not a ccxt symbol"),
        ({"side": "long"}, "not buy or sell"),
        ({"order_type": "iceberg"}, "not supported"),
        ({"time_in_force": "DAY"}, "not supported"),
        ({"client_order_id": "x" * 65}, "1 to 64 characters"),
    ],
)
def test_bad_orders_are_refused_and_nothing_is_written(
    app_engine: Engine, user_id: int, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        _submit(app_engine, user_id, **fields)
    assert caught.value.hint
    assert _snapshot(app_engine) == ([], [])


def test_bad_fills_and_unknown_orders(app_engine: Engine, user_id: int) -> None:
    order_id = _submit(app_engine, user_id)
    before = _snapshot(app_engine)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"price": "30000", "amount": "0"}, "must be positive"),
        ({"price": "0", "amount": "1"}, "must be positive"),
        ({"price": "30000", "amount": "1", "fee": "-1"}, "must be zero or positive"),
        ({"price": 30000.5, "amount": "1"}, "float 30000.5 given"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValidationError, match=message):
            o.fill_order(app_engine, order_id, **kwargs)
    assert _snapshot(app_engine) == before
    with pytest.raises(NotFoundError, match="does not exist"):
        o.fill_order(app_engine, "ord-missing", price="1", amount="1")
    with pytest.raises(NotFoundError, match="does not exist"):
        o.cancel_order(app_engine, "ord-missing")
    with pytest.raises(NotFoundError, match="user 999 does not exist"):
        _submit(app_engine, 999)
    with pytest.raises(ValidationError, match="unknown order event"):
        o.transition(app_engine, order_id, "explode")
    assert _snapshot(app_engine) == before


def test_list_orders_filters(app_engine: Engine, user_id: int) -> None:
    first = _order_in(app_engine, user_id, "open")
    second = _order_in(app_engine, user_id, "cancelled")
    assert [x.order_id for x in o.list_orders(app_engine, user_id=user_id)] == [second, first]
    assert [x.order_id for x in o.list_orders(app_engine, status="open")] == [first]
    with pytest.raises(ValidationError, match="not an order status"):
        o.list_orders(app_engine, status="done")


def test_values_beyond_the_column_range_are_refused(app_engine: Engine, user_id: int) -> None:
    """NUMERIC(38, 18) holds < 1e20: SQLite (text) refuses what PostgreSQL would."""
    big = "90000000000000000000"  # 9e19
    ids = [
        _submit(app_engine, user_id, order_type="market", price=None, amount=big) for _ in range(2)
    ]
    o.fill_order(app_engine, ids[0], price="1", amount=big)
    before = _snapshot(app_engine)
    with pytest.raises(ValidationError, match=r"position quantity would become 1\.8"):
        o.fill_order(app_engine, ids[1], price="1", amount=big)
    assert _snapshot(app_engine) == before
