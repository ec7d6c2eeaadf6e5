"""Category 10 -- trading and portfolio: positions and orders (exact decimals)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cryptotrading.models._common import Base, IdMixin, TimestampMixin, table_args

ORDER_STATUSES = (
    "new",
    "open",
    "partially_filled",
    "filled",
    "cancelled",
    "rejected",
    "expired",
)
ORDER_TYPES = ("market", "limit", "stop", "stop_limit")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class PortfolioPosition(IdMixin, TimestampMixin, Base):
    """A user's position in a symbol; ``quantity`` is signed (negative = short)."""

    __tablename__ = "portfolio_positions"
    __table_args__ = table_args("1.0.0", UniqueConstraint("user_id", "symbol", "exchange"))

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    symbol: Mapped[str] = mapped_column(String(32))
    exchange: Mapped[str] = mapped_column(String(32), default="")
    quantity: Mapped[Decimal] = mapped_column(default=Decimal(0))
    average_entry_price: Mapped[Decimal] = mapped_column(default=Decimal(0))
    realized_pnl: Mapped[Decimal] = mapped_column(default=Decimal(0))
    unrealized_pnl: Mapped[Decimal] = mapped_column(default=Decimal(0))
    fees_paid: Mapped[Decimal] = mapped_column(default=Decimal(0))
    last_price: Mapped[Decimal | None]
    market_value: Mapped[Decimal | None]
    opened_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)


class TradingOrder(IdMixin, TimestampMixin, Base):
    """An order and its fills; ``client_order_id`` makes submission idempotent."""

    __tablename__ = "trading_orders"
    __table_args__ = table_args(
        "1.0.0",
        UniqueConstraint("user_id", "client_order_id"),
        Index(None, "symbol", "created_at"),
        Index(None, "status"),
        CheckConstraint("side IN ('buy', 'sell')", name="side"),
        CheckConstraint(_in("order_type", ORDER_TYPES), name="order_type"),
        CheckConstraint(_in("status", ORDER_STATUSES), name="status"),
    )

    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_order_id: Mapped[str | None] = mapped_column(String(64))
    exchange_order_id: Mapped[str | None] = mapped_column(String(128))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    decision_id: Mapped[int | None] = mapped_column(
        ForeignKey("trading_decisions.id", ondelete="SET NULL"),
        index=True,
        info={"since": "1.5.0"},
    )
    symbol: Mapped[str] = mapped_column(String(32))
    exchange: Mapped[str] = mapped_column(String(32), default="")
    side: Mapped[str] = mapped_column(String(4))
    order_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20), default="new")
    amount: Mapped[Decimal]
    price: Mapped[Decimal | None]
    stop_price: Mapped[Decimal | None]
    filled_amount: Mapped[Decimal] = mapped_column(default=Decimal(0))
    average_fill_price: Mapped[Decimal | None]
    fee: Mapped[Decimal] = mapped_column(default=Decimal(0))
    fee_currency: Mapped[str | None] = mapped_column(String(16))
    time_in_force: Mapped[str | None] = mapped_column(String(8))
    fills: Mapped[list[Any] | None]
    submitted_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
