"""Mark positions to market and summarise a user's portfolio.

Equity is cash plus what the positions are worth, both exact (no division)::

    cash   = starting_cash + sum(sell fills price*amount) - sum(buy fills ...) - fees
    equity = cash + sum(quantity * last price)

It equals ``starting_cash + realized_pnl - fees_paid + unrealized_pnl`` up to the
18th-decimal rounding of average entry prices (see :mod:`.positions`).
Prices come from the market store: the close of the newest candle (at or before
``as_of`` when given).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from cryptotrading.common.clock import utcnow
from cryptotrading.common.views import decimal_text, row_view
from cryptotrading.db import unit_of_work
from cryptotrading.db.session import read_session
from cryptotrading.errors import NotFoundError
from cryptotrading.models.trading import PortfolioPosition, TradingOrder
from cryptotrading.models.users import User
from cryptotrading.trading.money import ZERO, exact, parse, quantize, storable
from cryptotrading.trading.orders import fills_notional
from cryptotrading.trading.positions import mark
from cryptotrading.trading.prices import latest_price


@dataclass(frozen=True)
class Exposure:
    """One position in a summary."""

    symbol: str
    exchange: str
    quantity: Decimal
    average_entry_price: Decimal
    last_price: Decimal | None
    market_value: Decimal | None
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    fees_paid: Decimal
    share_of_gross: Decimal | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "exchange": self.exchange,
            "quantity": decimal_text(self.quantity),
            "average_entry_price": decimal_text(self.average_entry_price),
            "last_price": decimal_text(self.last_price),
            "market_value": decimal_text(self.market_value),
            "unrealized_pnl": decimal_text(self.unrealized_pnl),
            "realized_pnl": decimal_text(self.realized_pnl),
            "fees_paid": decimal_text(self.fees_paid),
            "share_of_gross": decimal_text(self.share_of_gross),
        }


@dataclass(frozen=True)
class PortfolioSummary:
    """A user's portfolio marked to market."""

    user_id: int
    starting_cash: Decimal
    cash: Decimal
    positions: list[Exposure]
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees_paid: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    equity: Decimal
    marked_at: datetime
    unpriced: list[str] = field(default_factory=list)

    @property
    def net_pnl(self) -> Decimal:
        """Realized + unrealized - fees."""
        return self.realized_pnl + self.unrealized_pnl - self.fees_paid

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "starting_cash": decimal_text(self.starting_cash),
            "cash": decimal_text(self.cash),
            "equity": decimal_text(self.equity),
            "realized_pnl": decimal_text(self.realized_pnl),
            "unrealized_pnl": decimal_text(self.unrealized_pnl),
            "fees_paid": decimal_text(self.fees_paid),
            "net_pnl": decimal_text(self.net_pnl),
            "gross_exposure": decimal_text(self.gross_exposure),
            "net_exposure": decimal_text(self.net_exposure),
            "marked_at": self.marked_at.isoformat(),
            "unpriced": self.unpriced,
            "positions": [p.as_dict() for p in self.positions],
        }


def _price(
    market_engine: Engine,
    position: PortfolioPosition,
    as_of: datetime | None,
    timeframe: str | None,
) -> Decimal | None:
    """The newest close for the position (its exchange's candles first), or None."""
    for exchange in dict.fromkeys([position.exchange, None]):
        try:
            return latest_price(
                market_engine, position.symbol, timeframe=timeframe, exchange=exchange, as_of=as_of
            )
        except NotFoundError:
            continue
    return None


#: The columns of a position view, in order (see :func:`position_as_dict`).
POSITION_FIELDS = (
    "user_id",
    "symbol",
    "exchange",
    "quantity",
    "average_entry_price",
    "realized_pnl",
    "unrealized_pnl",
    "fees_paid",
    "last_price",
    "market_value",
    "opened_at",
    "closed_at",
    "version",
)


def position_as_dict(position: PortfolioPosition) -> dict[str, Any]:
    """JSON-ready view of a stored position (decimals as strings)."""
    return row_view(position, POSITION_FIELDS)


def mark_to_market(
    app_engine: Engine,
    market_engine: Engine,
    user_id: int,
    *,
    as_of: datetime | None = None,
    timeframe: str | None = None,
) -> tuple[list[PortfolioPosition], list[str]]:
    """Store ``last_price``, ``market_value`` and ``unrealized_pnl`` of every open
    position of the user, priced from the market store, in one transaction.
    Returns the positions and the symbols that had no candle (left as they were)."""
    unpriced: list[str] = []
    with unit_of_work(app_engine, "app store") as session:
        if session.get(User, user_id) is None:
            raise NotFoundError(f"user {user_id} does not exist", hint="Check the user id or name.")
        positions = list(
            session.execute(
                select(PortfolioPosition)
                .where(PortfolioPosition.user_id == user_id)
                .order_by(PortfolioPosition.symbol, PortfolioPosition.exchange)
                .with_for_update()
            ).scalars()
        )
        for position in positions:
            if position.quantity == 0:
                position.market_value, position.unrealized_pnl = ZERO, ZERO
                continue
            price = _price(market_engine, position, as_of, timeframe)
            if price is None:
                unpriced.append(position.symbol)
                continue
            position.last_price = price
            position.market_value, position.unrealized_pnl = (
                storable(value, f"{position.symbol} market value")
                for value in mark(position.quantity, position.average_entry_price, price)
            )
        session.flush()
        return positions, unpriced


def summarize(
    app_engine: Engine,
    market_engine: Engine | None,
    user_id: int,
    *,
    starting_cash: Any = "0",
    as_of: datetime | None = None,
    timeframe: str | None = None,
) -> PortfolioSummary:
    """Mark the user's positions (when a market engine is given) and summarise them.
    Positions without any candle are listed in ``unpriced`` and keep their last mark."""
    cash = parse(starting_cash, "starting cash")
    unpriced: list[str] = []
    if market_engine is not None:
        positions, unpriced = mark_to_market(
            app_engine, market_engine, user_id, as_of=as_of, timeframe=timeframe
        )
    else:
        positions = _load(app_engine, user_id)
    exposures: list[Exposure] = []
    with exact():
        for p in positions:
            unrealized = p.unrealized_pnl if p.quantity != 0 else ZERO
            exposures.append(
                Exposure(
                    p.symbol,
                    p.exchange,
                    p.quantity,
                    p.average_entry_price,
                    p.last_price,
                    p.market_value if p.quantity != 0 else ZERO,
                    unrealized,
                    p.realized_pnl,
                    p.fees_paid,
                )
            )
        gross = sum((abs(e.market_value or ZERO) for e in exposures), start=ZERO)
        net = sum((e.market_value or ZERO for e in exposures), start=ZERO)
        exposures = [
            replace(
                e,
                share_of_gross=quantize(abs(e.market_value or ZERO) / gross) if gross else None,
            )
            for e in exposures
        ]
        realized = sum((e.realized_pnl for e in exposures), start=ZERO)
        unrealized = sum((e.unrealized_pnl for e in exposures), start=ZERO)
        fees = sum((e.fees_paid for e in exposures), start=ZERO)
        balance = cash + _trading_cash_flow(app_engine, user_id)
        equity = balance + sum(
            (
                e.market_value if e.market_value is not None else e.quantity * e.average_entry_price
                for e in exposures
            ),
            start=ZERO,
        )
    return PortfolioSummary(
        user_id=user_id,
        starting_cash=cash,
        cash=balance,
        positions=exposures,
        realized_pnl=realized,
        unrealized_pnl=unrealized,
        fees_paid=fees,
        gross_exposure=gross,
        net_exposure=net,
        equity=equity,
        marked_at=as_of or utcnow(),
        unpriced=unpriced,
    )


def _load(app_engine: Engine, user_id: int) -> list[PortfolioPosition]:
    with unit_of_work(app_engine, "app store") as session:
        if session.get(User, user_id) is None:
            raise NotFoundError(f"user {user_id} does not exist")
        return list(
            session.execute(
                select(PortfolioPosition)
                .where(PortfolioPosition.user_id == user_id)
                .order_by(PortfolioPosition.symbol, PortfolioPosition.exchange)
            ).scalars()
        )


def _trading_cash_flow(app_engine: Engine, user_id: int) -> Decimal:
    """Cash received minus cash paid over all the user's fills, fees included."""
    with read_session(app_engine, "app store") as session:
        orders = session.execute(
            select(TradingOrder.side, TradingOrder.fills, TradingOrder.fee).where(
                TradingOrder.user_id == user_id
            )
        ).all()
    flow = ZERO
    with exact():
        for side, fills, fee in orders:
            notional = fills_notional(fills)
            flow += (notional if side == "sell" else -notional) - fee
    return flow
