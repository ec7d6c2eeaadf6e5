"""Trading: orders with a lifecycle, positions with exact P&L, portfolio summaries,
and read-only price look-ups over the market store."""

from cryptotrading.trading.orders import (
    EVENTS,
    LEGAL_TRANSITIONS,
    FillResult,
    Submitted,
    accept_order,
    cancel_order,
    expire_order,
    fill_order,
    get_order,
    list_orders,
    reject_order,
    submit_order,
    transition,
)
from cryptotrading.trading.portfolio import PortfolioSummary, mark_to_market, summarize
from cryptotrading.trading.positions import (
    Fill,
    PositionState,
    apply_fill,
    get_position,
    list_positions,
    replay,
)
from cryptotrading.trading.prices import Candle, candle_at_or_after, latest_candle, latest_price

__all__ = [
    "EVENTS",
    "LEGAL_TRANSITIONS",
    "Candle",
    "Fill",
    "FillResult",
    "PortfolioSummary",
    "PositionState",
    "Submitted",
    "accept_order",
    "apply_fill",
    "cancel_order",
    "candle_at_or_after",
    "expire_order",
    "fill_order",
    "get_order",
    "get_position",
    "latest_candle",
    "latest_price",
    "list_orders",
    "list_positions",
    "mark_to_market",
    "reject_order",
    "replay",
    "submit_order",
    "summarize",
    "transition",
]
