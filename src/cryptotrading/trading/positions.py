"""Positions and their P&L, updated from fills (average-cost accounting).

The accounting, in exact decimals:

* ``quantity`` is signed (negative = short); a buy adds, a sell subtracts.
* A fill in the direction of the position (or from flat) raises it and moves the
  average entry price to the size-weighted mean, rounded half-even to 18 places.
* A fill against the position realizes ``closed * (price - average) * sign`` where
  ``closed = min(amount, |quantity|)``; the average entry price stays.
* A fill larger than the position closes it and opens the rest on the other side at
  the fill price (a flip from long to short or back).
* ``realized_pnl`` is the price P&L; fees are summed apart in ``fees_paid`` (net P&L
  = realized - fees + unrealized).
* Marked to a price *P*: ``market_value = quantity * P``,
  ``unrealized_pnl = quantity * (P - average)``.

:func:`apply_fill` is the pure rule; :func:`record_fill_on_position` applies it to the
locked database row in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cryptotrading.db.session import read_session
from cryptotrading.errors import NotFoundError
from cryptotrading.models.trading import PortfolioPosition
from cryptotrading.trading.money import ZERO, exact, quantize, storable

SIDES = ("buy", "sell")


@dataclass(frozen=True)
class Fill:
    """One execution: *side* ``buy``/``sell``, positive *amount*, *price*, *fee*."""

    side: str
    amount: Decimal
    price: Decimal
    fee: Decimal = ZERO
    time: datetime | None = None


@dataclass(frozen=True)
class PositionState:
    """The P&L-relevant part of a position (what :func:`apply_fill` changes)."""

    quantity: Decimal = ZERO
    average_entry_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees_paid: Decimal = ZERO


def _sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


def apply_fill(state: PositionState, fill: Fill) -> PositionState:
    """The position after *fill* (pure; see the module docstring for the rules)."""
    direction = 1 if fill.side == "buy" else -1
    with exact():
        fees = state.fees_paid + fill.fee
        qty, avg, realized = state.quantity, state.average_entry_price, state.realized_pnl
        held = _sign(qty)
        if held == 0 or held == direction:
            new_qty = qty + direction * fill.amount
            avg = quantize((abs(qty) * avg + fill.amount * fill.price) / abs(new_qty))
            return PositionState(new_qty, avg, realized, fees)
        closed = min(fill.amount, abs(qty))
        realized = realized + quantize(closed * (fill.price - avg) * held)
        new_qty = qty + direction * fill.amount
        if new_qty == 0:
            avg = ZERO
        elif _sign(new_qty) != held:
            avg = fill.price
        return PositionState(new_qty + ZERO, avg, realized, fees)


def replay(fills: Sequence[Fill], state: PositionState | None = None) -> PositionState:
    """The position after applying *fills* in order."""
    current = state or PositionState()
    for fill in fills:
        current = apply_fill(current, fill)
    return current


def mark(quantity: Decimal, average: Decimal, price: Decimal) -> tuple[Decimal, Decimal]:
    """``(market_value, unrealized_pnl)`` of a position at *price*."""
    with exact():
        return quantize(quantity * price), quantize(quantity * (price - average))


def _insert_if_missing(session: Session, user_id: int, symbol: str, exchange: str) -> None:
    """Create the position row unless it exists, without racing other writers."""
    values = {
        "user_id": user_id,
        "symbol": symbol,
        "exchange": exchange,
        "quantity": ZERO,
        "average_entry_price": ZERO,
        "realized_pnl": ZERO,
        "unrealized_pnl": ZERO,
        "fees_paid": ZERO,
        "version": 0,
    }
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(PortfolioPosition).values(**values)
    session.execute(
        statement.on_conflict_do_nothing(index_elements=["user_id", "symbol", "exchange"])
    )


def lock_position(session: Session, user_id: int, symbol: str, exchange: str) -> PortfolioPosition:
    """The position row, created if needed and locked for this transaction
    (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's BEGIN IMMEDIATE already
    serialises writers)."""
    query = (
        select(PortfolioPosition)
        .where(
            PortfolioPosition.user_id == user_id,
            PortfolioPosition.symbol == symbol,
            PortfolioPosition.exchange == exchange,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    position = session.execute(query).scalar_one_or_none()
    if position is None:
        _insert_if_missing(session, user_id, symbol, exchange)
        position = session.execute(query).scalar_one()
    return position


def state_of(position: PortfolioPosition) -> PositionState:
    return PositionState(
        position.quantity, position.average_entry_price, position.realized_pnl, position.fees_paid
    )


def record_fill_on_position(
    session: Session, *, user_id: int, symbol: str, exchange: str, fill: Fill
) -> PortfolioPosition:
    """Apply *fill* to the user's position inside the caller's transaction."""
    position = lock_position(session, user_id, symbol, exchange)
    before = state_of(position)
    after = apply_fill(before, fill)
    for name in ("quantity", "realized_pnl", "fees_paid"):
        storable(getattr(after, name), f"position {name}")
    position.quantity = after.quantity
    position.average_entry_price = after.average_entry_price
    position.realized_pnl = after.realized_pnl
    position.fees_paid = after.fees_paid
    position.version = position.version + 1
    if before.quantity == 0 and after.quantity != 0:
        position.opened_at = fill.time
        position.closed_at = None
    elif after.quantity == 0 and before.quantity != 0:
        position.closed_at = fill.time
    elif _sign(before.quantity) != _sign(after.quantity):
        position.opened_at = fill.time
    if position.last_price is not None:
        position.market_value, position.unrealized_pnl = (
            storable(value, "position value")
            for value in mark(after.quantity, after.average_entry_price, position.last_price)
        )
    session.flush()
    return position


def get_position(
    engine: Engine, user_id: int, symbol: str, exchange: str = ""
) -> PortfolioPosition:
    """The user's position in *symbol* on *exchange*."""
    with read_session(engine) as session:
        position = session.execute(
            select(PortfolioPosition).where(
                PortfolioPosition.user_id == user_id,
                PortfolioPosition.symbol == symbol,
                PortfolioPosition.exchange == exchange,
            )
        ).scalar_one_or_none()
    if position is None:
        raise NotFoundError(
            f"user {user_id} has no position in {symbol!r} on exchange {exchange or '(none)'!r}",
            hint="List positions with `cryptotrading portfolio positions --user ...`.",
        )
    return position


def list_positions(
    engine: Engine, user_id: int, *, include_closed: bool = False
) -> list[PortfolioPosition]:
    """The user's positions, open ones only unless *include_closed*."""
    with read_session(engine) as session:
        rows = list(
            session.execute(
                select(PortfolioPosition)
                .where(PortfolioPosition.user_id == user_id)
                .order_by(PortfolioPosition.symbol, PortfolioPosition.exchange)
            ).scalars()
        )
    return [row for row in rows if include_closed or row.quantity != 0]


def with_price(state: PositionState, price: Decimal) -> tuple[Decimal, Decimal]:
    """Shortcut: :func:`mark` of a :class:`PositionState`."""
    return mark(state.quantity, state.average_entry_price, price)


__all__ = [
    "Fill",
    "PositionState",
    "apply_fill",
    "get_position",
    "list_positions",
    "lock_position",
    "mark",
    "record_fill_on_position",
    "replay",
    "with_price",
]
