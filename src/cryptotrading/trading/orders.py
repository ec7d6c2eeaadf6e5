"""Orders and their lifecycle (a small state machine), fills and idempotent submit.

States (``trading_orders.status``)::

    new ──accept──> open ──fill──> partially_filled ──fill──> filled
     │                │                  │
     ├─fill─> partially_filled / filled  ├─cancel─> cancelled
     ├─cancel─> cancelled                └─expire─> expired
     └─reject─> rejected     open ─cancel/expire─> cancelled / expired

``filled``, ``cancelled``, ``rejected`` and ``expired`` are terminal. Every change
happens in one transaction with the order row locked; an illegal event raises
:class:`~cryptotrading.errors.ValidationError` and changes nothing. A fill updates
the user's position (:mod:`cryptotrading.trading.positions`) in the same transaction
and can never take ``filled_amount`` beyond ``amount``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cryptotrading.common.clock import maybe_utc, utcnow
from cryptotrading.common.views import decimal_text, row_view
from cryptotrading.db import unit_of_work
from cryptotrading.db.session import read_session
from cryptotrading.errors import IntegrityViolationError, NotFoundError, ValidationError
from cryptotrading.models.intelligence import TradingDecision
from cryptotrading.models.trading import (
    ORDER_STATUSES,
    ORDER_TYPES,
    PortfolioPosition,
    TradingOrder,
)
from cryptotrading.models.users import User
from cryptotrading.trading.money import ZERO, exact, parse, quantize, storable
from cryptotrading.trading.positions import Fill, record_fill_on_position

TERMINAL = frozenset({"filled", "cancelled", "rejected", "expired"})
FILLABLE = frozenset({"new", "open", "partially_filled"})

#: event -> (states it is legal from, state it leads to); ``fill`` leads to
#: ``partially_filled`` or ``filled`` depending on the amount.
EVENTS: dict[str, tuple[frozenset[str], str]] = {
    "accept": (frozenset({"new"}), "open"),
    "reject": (frozenset({"new"}), "rejected"),
    "cancel": (frozenset({"new", "open", "partially_filled"}), "cancelled"),
    "expire": (frozenset({"open", "partially_filled"}), "expired"),
    "fill": (FILLABLE, "filled"),
}

#: Every legal (from -> to) status change.
LEGAL_TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"open", "partially_filled", "filled", "cancelled", "rejected"}),
    "open": frozenset({"partially_filled", "filled", "cancelled", "expired"}),
    "partially_filled": frozenset({"partially_filled", "filled", "cancelled", "expired"}),
    "filled": frozenset(),
    "cancelled": frozenset(),
    "rejected": frozenset(),
    "expired": frozenset(),
}

TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTD", "PO")


@dataclass(frozen=True)
class OrderRequest:
    """A validated order, ready to store."""

    user_id: int
    symbol: str
    side: str
    order_type: str
    amount: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    exchange: str
    time_in_force: str | None
    client_order_id: str | None
    decision_id: int | None
    fee_currency: str | None

    def same_as(self, order: TradingOrder) -> bool:
        """Whether *order* was created by an identical request (idempotent retry)."""
        return (
            order.symbol == self.symbol
            and order.side == self.side
            and order.order_type == self.order_type
            and order.amount == self.amount
            and order.price == self.price
            and order.stop_price == self.stop_price
            and order.exchange == self.exchange
        )


@dataclass(frozen=True)
class Submitted:
    """The stored order and whether this call created it (False: idempotent retry)."""

    order: TradingOrder
    created: bool


@dataclass(frozen=True)
class FillResult:
    """The order and the position after a fill."""

    order: TradingOrder
    position: PortfolioPosition


def validate_symbol(symbol: str) -> str:
    """A ccxt symbol such as ``BTC/USDT``."""
    base, _, quote = symbol.partition("/")
    if not base or not quote or len(symbol) > 32 or symbol != symbol.strip():
        raise ValidationError(
            f"symbol {symbol!r} is not a ccxt symbol",
            hint="Use the ccxt notation BASE/QUOTE, for example BTC/USDT.",
        )
    return symbol


def build_request(
    *,
    user_id: int,
    symbol: str,
    side: str,
    order_type: str,
    amount: Any,
    price: Any = None,
    stop_price: Any = None,
    exchange: str = "",
    time_in_force: str | None = None,
    client_order_id: str | None = None,
    decision_id: int | None = None,
    fee_currency: str | None = None,
) -> OrderRequest:
    """Validate an order's fields (raises :class:`ValidationError`)."""
    validate_symbol(symbol)
    if side not in ("buy", "sell"):
        raise ValidationError(f"side {side!r} is not buy or sell", hint="Use buy or sell.")
    if order_type not in ORDER_TYPES:
        raise ValidationError(
            f"order type {order_type!r} is not supported",
            hint=f"Use one of: {', '.join(ORDER_TYPES)}.",
        )
    quantity = parse(amount, "amount", positive=True, allow_zero=False)
    limit = None if price is None else parse(price, "price", positive=True, allow_zero=False)
    stop = (
        None
        if stop_price is None
        else parse(stop_price, "stop price", positive=True, allow_zero=False)
    )
    needs_price = order_type in ("limit", "stop_limit")
    needs_stop = order_type in ("stop", "stop_limit")
    if needs_price != (limit is not None):
        raise ValidationError(
            f"a {order_type} order {'needs' if needs_price else 'takes no'} limit price",
            hint="Give --price for limit and stop_limit orders only.",
        )
    if needs_stop != (stop is not None):
        raise ValidationError(
            f"a {order_type} order {'needs' if needs_stop else 'takes no'} stop price",
            hint="Give --stop-price for stop and stop_limit orders only.",
        )
    if time_in_force is not None and time_in_force not in TIME_IN_FORCE:
        raise ValidationError(
            f"time in force {time_in_force!r} is not supported",
            hint=f"Use one of: {', '.join(TIME_IN_FORCE)}.",
        )
    if client_order_id is not None and not 0 < len(client_order_id) <= 64:
        raise ValidationError(
            "client order id must be 1 to 64 characters",
            hint="Use a short unique id, such as a UUID.",
        )
    if len(exchange) > 32:
        raise ValidationError("exchange name is longer than 32 characters")
    return OrderRequest(
        user_id=user_id,
        symbol=symbol,
        side=side,
        order_type=order_type,
        amount=quantity,
        price=limit,
        stop_price=stop,
        exchange=exchange,
        time_in_force=time_in_force,
        client_order_id=client_order_id,
        decision_id=decision_id,
        fee_currency=fee_currency,
    )


def _by_client_id(session: Session, user_id: int, client_order_id: str) -> TradingOrder | None:
    return session.execute(
        select(TradingOrder).where(
            TradingOrder.user_id == user_id, TradingOrder.client_order_id == client_order_id
        )
    ).scalar_one_or_none()


def _existing(request: OrderRequest, order: TradingOrder) -> Submitted:
    if not request.same_as(order):
        raise ValidationError(
            f"client order id {request.client_order_id!r} already names order "
            f"{order.order_id} with different parameters",
            hint="Use a new client order id for a different order; nothing was written.",
        )
    return Submitted(order, created=False)


def create_order(
    session: Session, request: OrderRequest, *, submitted_at: datetime | None = None
) -> Submitted:
    """Store *request* as a ``new`` order in the caller's transaction; an order with
    the same client order id is returned instead (idempotent retry)."""
    user = session.get(User, request.user_id)
    if user is None or user.deleted_at is not None:
        raise NotFoundError(
            f"user {request.user_id} does not exist"
            + ("" if user is None else " (it was deleted)"),
            hint="Create the user first (`cryptotrading users ...`), or restore it with "
            "`cryptotrading db restore-deleted users ID`.",
        )
    if request.decision_id is not None:
        decision = session.get(TradingDecision, request.decision_id)
        if decision is None or decision.deleted_at is not None:
            raise NotFoundError(
                f"decision {request.decision_id} does not exist"
                + ("" if decision is None else " (it was deleted)"),
                hint="List decisions with `cryptotrading decisions list`, or leave --decision out.",
            )
    if request.client_order_id is not None:
        found = _by_client_id(session, request.user_id, request.client_order_id)
        if found is not None:
            return _existing(request, found)
    order = TradingOrder(
        order_id=f"ord-{uuid.uuid4().hex}",
        client_order_id=request.client_order_id,
        user_id=request.user_id,
        decision_id=request.decision_id,
        symbol=request.symbol,
        exchange=request.exchange,
        side=request.side,
        order_type=request.order_type,
        status="new",
        amount=request.amount,
        price=request.price,
        stop_price=request.stop_price,
        filled_amount=ZERO,
        fee=ZERO,
        fee_currency=request.fee_currency,
        time_in_force=request.time_in_force,
        fills=[],
        submitted_at=submitted_at or utcnow(),
    )
    session.add(order)
    session.flush()
    return Submitted(order, created=True)


def after_race(engine: Engine, request: OrderRequest) -> Submitted | None:
    """The order a concurrent submit with the same client order id stored, if any
    (PostgreSQL reports the race as a unique violation)."""
    if request.client_order_id is None:
        return None
    with unit_of_work(engine, "app store") as session:
        found = _by_client_id(session, request.user_id, request.client_order_id)
        return None if found is None else _existing(request, found)


def submit_request(
    engine: Engine, request: OrderRequest, *, submitted_at: datetime | None = None
) -> Submitted:
    """Store *request* as a ``new`` order; a retry with the same client order id
    returns the first order instead of creating a second one."""
    try:
        with unit_of_work(engine, "app store") as session:
            return create_order(session, request, submitted_at=submitted_at)
    except IntegrityViolationError:
        raced = after_race(engine, request)
        if raced is None:
            raise
        return raced


def submit_order(engine: Engine, **fields: Any) -> Submitted:
    """Validate and store an order (see :func:`build_request` for the fields;
    ``submitted_at`` is optional)."""
    submitted_at = fields.pop("submitted_at", None)
    return submit_request(engine, build_request(**fields), submitted_at=submitted_at)


def _lock(session: Session, order_id: str) -> TradingOrder:
    order = session.execute(
        select(TradingOrder)
        .where(TradingOrder.order_id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    return _found(order, order_id)


def _found(order: TradingOrder | None, order_id: str) -> TradingOrder:
    if order is None:
        raise NotFoundError(
            f"order {order_id!r} does not exist",
            hint="List orders with `cryptotrading orders list`.",
        )
    return order


def _check_event(order: TradingOrder, event: str) -> None:
    if event not in EVENTS:
        raise ValidationError(
            f"unknown order event {event!r}", hint=f"Use one of: {', '.join(EVENTS)}."
        )
    allowed, _target = EVENTS[event]
    if order.status not in allowed:
        raise ValidationError(
            f"order {order.order_id} is {order.status}: cannot {event} it "
            f"({event} is allowed from {', '.join(sorted(allowed))})",
            hint="Nothing was changed; check the order's status with `cryptotrading orders show`.",
        )


def transition(
    engine: Engine,
    order_id: str,
    event: str,
    *,
    at: datetime | None = None,
    exchange_order_id: str | None = None,
) -> TradingOrder:
    """Apply *event* (``accept``, ``reject``, ``cancel``, ``expire``) to an order."""
    if event == "fill":
        raise ValidationError("use fill_order() to fill an order", hint="Call fill_order().")
    with unit_of_work(engine, "app store") as session:
        order = _lock(session, order_id)
        _check_event(order, event)
        order.status = EVENTS[event][1]
        if exchange_order_id is not None:
            order.exchange_order_id = exchange_order_id
        if order.status in TERMINAL:
            order.closed_at = at or utcnow()
        session.flush()
        return order


def accept_order(engine: Engine, order_id: str, **kwargs: Any) -> TradingOrder:
    """``new -> open``: the exchange acknowledged the order."""
    return transition(engine, order_id, "accept", **kwargs)


def reject_order(engine: Engine, order_id: str, **kwargs: Any) -> TradingOrder:
    """``new -> rejected``."""
    return transition(engine, order_id, "reject", **kwargs)


def cancel_order(engine: Engine, order_id: str, **kwargs: Any) -> TradingOrder:
    """``new / open / partially_filled -> cancelled`` (fills so far are kept)."""
    return transition(engine, order_id, "cancel", **kwargs)


def expire_order(engine: Engine, order_id: str, **kwargs: Any) -> TradingOrder:
    """``open / partially_filled -> expired`` (time in force ran out)."""
    return transition(engine, order_id, "expire", **kwargs)


def _check_fill_price(order: TradingOrder, price: Decimal) -> None:
    if order.order_type not in ("limit", "stop_limit") or order.price is None:
        return
    worse = price > order.price if order.side == "buy" else price < order.price
    if worse:
        relation = "above" if order.side == "buy" else "below"
        raise ValidationError(
            f"fill price {price} is {relation} the limit price {order.price} "
            f"of {order.side} order {order.order_id}",
            hint="A limit order only fills at its limit price or better; nothing was written.",
        )


def fills_notional(fills: list[dict[str, Any]] | None) -> Decimal:
    """The exact sum of price x amount over an order's ``fills`` (call inside
    :func:`~cryptotrading.trading.money.exact`)."""
    return sum((Decimal(f["price"]) * Decimal(f["amount"]) for f in fills or []), start=ZERO)


def fill_order(
    engine: Engine,
    order_id: str,
    *,
    price: Any,
    amount: Any,
    fee: Any = "0",
    time: datetime | None = None,
) -> FillResult:
    """Record a fill of an order and apply it to the position, in one transaction.

    Refuses (and writes nothing) when the order is not fillable, the amount would
    take ``filled_amount`` beyond ``amount``, or the price breaks the limit.
    """
    fill_price = parse(price, "fill price", positive=True, allow_zero=False)
    fill_amount = parse(amount, "fill amount", positive=True, allow_zero=False)
    fill_fee = parse(fee, "fee", positive=True)
    when = maybe_utc(time, "time") or utcnow()
    with unit_of_work(engine, "app store") as session:
        order = _lock(session, order_id)
        _check_event(order, "fill")
        remaining = order.amount - order.filled_amount
        if fill_amount > remaining:
            raise ValidationError(
                f"fill of {fill_amount} would overfill order {order.order_id}: "
                f"amount {order.amount}, already filled {order.filled_amount}, "
                f"remaining {remaining}",
                hint="Fill at most the remaining amount; nothing was written.",
            )
        _check_fill_price(order, fill_price)
        fills = [*(order.fills or [])]
        fills.append(
            {
                "price": decimal_text(fill_price),
                "amount": decimal_text(fill_amount),
                "fee": decimal_text(fill_fee),
                "time": when.isoformat(),
            }
        )
        with exact():
            filled = order.filled_amount + fill_amount
            notional = fills_notional(fills)
            order.average_fill_price = quantize(notional / filled)
            order.filled_amount = filled
            order.fee = storable(order.fee + fill_fee, "order fee")
        order.fills = fills
        if filled == order.amount:
            order.status = "filled"
            order.closed_at = when
        else:
            order.status = "partially_filled"
        position = record_fill_on_position(
            session,
            user_id=order.user_id,
            symbol=order.symbol,
            exchange=order.exchange,
            fill=Fill(order.side, fill_amount, fill_price, fill_fee, when),
        )
        session.flush()
        return FillResult(order, position)


def get_order(engine: Engine, order_id: str) -> TradingOrder:
    """The order with *order_id* (our id, ``ord-...``)."""
    with read_session(engine, "app store") as session:
        order = session.execute(
            select(TradingOrder).where(TradingOrder.order_id == order_id)
        ).scalar_one_or_none()
    return _found(order, order_id)


def list_orders(
    engine: Engine,
    *,
    user_id: int | None = None,
    symbol: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[TradingOrder]:
    """Orders, newest first, optionally filtered."""
    if status is not None and status not in ORDER_STATUSES:
        raise ValidationError(
            f"status {status!r} is not an order status",
            hint=f"Use one of: {', '.join(ORDER_STATUSES)}.",
        )
    query = select(TradingOrder).order_by(TradingOrder.id.desc()).limit(limit)
    if user_id is not None:
        query = query.where(TradingOrder.user_id == user_id)
    if symbol is not None:
        query = query.where(TradingOrder.symbol == symbol)
    if status is not None:
        query = query.where(TradingOrder.status == status)
    with read_session(engine, "app store") as session:
        return list(session.execute(query).scalars())


#: The columns of an order view, in order (see :func:`order_as_dict`).
ORDER_FIELDS = (
    "order_id",
    "client_order_id",
    "exchange_order_id",
    "user_id",
    "decision_id",
    "symbol",
    "exchange",
    "side",
    "order_type",
    "status",
    "amount",
    "price",
    "stop_price",
    "filled_amount",
    "average_fill_price",
    "fee",
    "fee_currency",
    "time_in_force",
    "fills",
    "submitted_at",
    "closed_at",
)


def order_as_dict(order: TradingOrder) -> dict[str, Any]:
    """JSON-ready view of an order (decimals as strings, no fills as ``[]``)."""
    return {**row_view(order, ORDER_FIELDS), "fills": order.fills or []}
