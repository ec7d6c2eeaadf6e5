"""Evaluate decisions at a horizon against the stored candles (``decision_outcomes``).

Prices are candle *open* prices: the price at a time *t* is the open of the first
candle opened at or after *t* (the first price one could have traded at).

* entry: the average fill price of the decision's orders when they were filled,
  else the decision's limit ``price``, else the price at ``decided_at``;
* exit: the price at ``decided_at + horizon``;
* ``return_pct``: the decision's return in percent (the market move for ``buy``,
  its opposite for ``sell``, the raw move for ``hold``);
* ``profit_loss``: filled (or decided) quantity x price change in the decision's
  direction, minus the fees paid; ``None`` without a quantity; 0 for ``hold``;
* ``actual_outcome``: the market's move, ``up`` / ``down`` beyond the hold band,
  else ``flat``;
* ``is_correct``: ``buy`` when the market rose, ``sell`` when it fell, ``hold`` when
  it stayed within the hold band (default +-1 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cryptotrading.common.clock import utcnow
from cryptotrading.common.views import decimal_text
from cryptotrading.db import unit_of_work
from cryptotrading.db.session import read_session
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.intelligence.decisions import load_decision
from cryptotrading.models.intelligence import DecisionOutcome, TradingDecision
from cryptotrading.models.trading import TradingOrder
from cryptotrading.trading.money import ZERO, exact, parse, quantize
from cryptotrading.trading.prices import Candle, candle_at_or_after

DEFAULT_HOLD_BAND = Decimal("0.01")
DEFAULT_MAX_GAP = timedelta(hours=6)
#: The longest horizon or candle gap, in minutes: a century.
MAX_MINUTES = 100 * 366 * 24 * 60


def minutes(value: Any, what: str) -> int:
    """*value* if it is a whole number of minutes in 1..:data:`MAX_MINUTES`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_MINUTES:
        raise ValidationError(
            f"{what} {value!r} is not a number of minutes in 1..{MAX_MINUTES}",
            hint="Give the horizon in minutes, for example 1440 for a day.",
        )
    return value


def gap_from_minutes(value_minutes: Any) -> timedelta:
    """The largest accepted distance of a candle after its target, from minutes."""
    return timedelta(minutes=minutes(value_minutes, "max gap"))


@dataclass(frozen=True)
class Entry:
    """Where a decision entered: price, quantity, fees and where they came from."""

    price: Decimal
    quantity: Decimal | None
    fees: Decimal
    source: str
    order_ids: list[str]


def _price_at(
    market_engine: Engine,
    symbol: str,
    when: datetime,
    timeframe: str | None,
    max_gap: timedelta,
) -> Candle:
    candle = candle_at_or_after(market_engine, symbol, when, timeframe=timeframe)
    if candle.time - when > max_gap:
        raise NotFoundError(
            f"no candle of {symbol} within {max_gap} after {when.isoformat()} "
            f"(next one opens {candle.time.isoformat()})",
            hint="Candles are missing around that time: ingest them, or raise --max-gap.",
        )
    return candle


def _entry(
    app_engine: Engine,
    market_engine: Engine,
    decision: TradingDecision,
    timeframe: str | None,
    max_gap: timedelta,
) -> Entry:
    with read_session(app_engine, "app store") as session:
        orders = list(
            session.execute(
                select(TradingOrder)
                .where(TradingOrder.decision_id == decision.id)
                .order_by(TradingOrder.id)
            ).scalars()
        )
    filled = [o for o in orders if o.filled_amount > 0 and o.average_fill_price is not None]
    if filled:
        with exact():
            quantity = sum((o.filled_amount for o in filled), start=ZERO)
            notional = sum(
                (o.filled_amount * (o.average_fill_price or ZERO) for o in filled), start=ZERO
            )
            fees = sum((o.fee for o in filled), start=ZERO)
            return Entry(
                quantize(notional / quantity), quantity, fees, "fills", [o.order_id for o in filled]
            )
    if decision.price is not None:
        return Entry(decision.price, decision.quantity, ZERO, "decision price", [])
    when = decision.decided_at or decision.created_at
    candle = _price_at(market_engine, decision.symbol, when, timeframe, max_gap)
    return Entry(candle.open, decision.quantity, ZERO, "candle open", [])


def assess(action: str, entry: Entry, exit_price: Decimal, hold_band: Decimal) -> dict[str, Any]:
    """The outcome fields of a decision entered at *entry* and valued at *exit_price*."""
    with exact():
        move = exit_price / entry.price - 1
        direction = {"buy": 1, "sell": -1}.get(action, 0)
        decision_return = move * direction if direction else move
        if direction == 0:
            pnl: Decimal | None = ZERO
        elif entry.quantity is None:
            pnl = None
        else:
            pnl = quantize(direction * entry.quantity * (exit_price - entry.price) - entry.fees)
    outcome = "up" if move > hold_band else "down" if move < -hold_band else "flat"
    correct = {"buy": move > 0, "sell": move < 0}.get(action, abs(move) <= hold_band)
    return {
        "actual_outcome": outcome,
        "return_pct": quantize(decision_return * 100),
        "profit_loss": pnl,
        "is_correct": correct,
        "move": move,
    }


def evaluate_decision(
    app_engine: Engine,
    market_engine: Engine,
    decision_id: int,
    horizon_minutes: int,
    *,
    timeframe: str | None = None,
    hold_band: Any = DEFAULT_HOLD_BAND,
    max_gap: timedelta = DEFAULT_MAX_GAP,
) -> DecisionOutcome:
    """Evaluate a decision *horizon_minutes* after it was made. Evaluating the same
    decision at the same horizon again returns the stored outcome."""
    minutes(horizon_minutes, "horizon")
    band = parse(hold_band, "hold band", positive=True)
    with read_session(app_engine, "app store") as session:
        decision = load_decision(session, decision_id)
        existing = _existing(session, decision_id, horizon_minutes)
        if existing is not None:
            return existing
    if decision.status == "cancelled":
        raise ValidationError(
            f"decision {decision_id} was cancelled; there is nothing to evaluate",
            hint="Evaluate pending or executed decisions only.",
        )
    decided = decision.decided_at or decision.created_at
    try:
        target = decided + timedelta(minutes=horizon_minutes)
    except OverflowError:
        raise ValidationError(
            f"decision {decision_id} at {decided.isoformat()} plus {horizon_minutes} minutes "
            "is beyond the calendar",
            hint="Give a shorter horizon.",
        ) from None
    entry = _entry(app_engine, market_engine, decision, timeframe, max_gap)
    exit_candle = _price_at(market_engine, decision.symbol, target, timeframe, max_gap)
    fields = assess(decision.action, entry, exit_candle.open, band)
    outcome = DecisionOutcome(
        decision_id=decision_id,
        actual_outcome=fields["actual_outcome"],
        horizon_minutes=horizon_minutes,
        entry_price=entry.price,
        exit_price=exit_candle.open,
        return_pct=fields["return_pct"],
        profit_loss=fields["profit_loss"],
        is_correct=fields["is_correct"],
        evaluated_at=utcnow(),
        details={
            "action": decision.action,
            "entry_source": entry.source,
            "quantity": decimal_text(entry.quantity),
            "fees": decimal_text(entry.fees),
            "order_ids": entry.order_ids,
            "exit_candle": {
                "timestamp": exit_candle.timestamp,
                "timeframe": exit_candle.timeframe,
                "time": exit_candle.time.isoformat(),
            },
            "target_time": target.isoformat(),
            "market_move_pct": decimal_text(quantize(fields["move"] * 100)),
            "hold_band": decimal_text(band),
        },
    )
    with unit_of_work(app_engine, "app store") as session:
        raced = _existing(session, decision_id, horizon_minutes)
        if raced is not None:
            return raced
        session.add(outcome)
        session.flush()
        return outcome


def _existing(session: Session, decision_id: int, horizon: int) -> DecisionOutcome | None:
    found: DecisionOutcome | None = session.execute(
        select(DecisionOutcome)
        .where(
            DecisionOutcome.decision_id == decision_id,
            DecisionOutcome.horizon_minutes == horizon,
        )
        .order_by(DecisionOutcome.id)
        .limit(1)
    ).scalar_one_or_none()
    return found


@dataclass(frozen=True)
class Sweep:
    """What :func:`evaluate_pending` did."""

    evaluated: list[DecisionOutcome]
    not_due: list[int]


def evaluate_pending(
    app_engine: Engine,
    market_engine: Engine,
    horizon_minutes: int,
    *,
    timeframe: str | None = None,
    hold_band: Any = DEFAULT_HOLD_BAND,
    max_gap: timedelta = DEFAULT_MAX_GAP,
) -> Sweep:
    """Evaluate every pending or executed decision without an outcome at this
    horizon; decisions whose horizon has no candle yet are listed in ``not_due``."""
    minutes(horizon_minutes, "horizon")
    with read_session(app_engine, "app store") as session:
        done = select(DecisionOutcome.decision_id).where(
            DecisionOutcome.horizon_minutes == horizon_minutes
        )
        ids = list(
            session.execute(
                select(TradingDecision.id)
                .where(
                    TradingDecision.deleted_at.is_(None),
                    TradingDecision.status != "cancelled",
                    TradingDecision.id.not_in(done),
                )
                .order_by(TradingDecision.id)
            ).scalars()
        )
    evaluated, not_due = [], []
    for decision_id in ids:
        try:
            evaluated.append(
                evaluate_decision(
                    app_engine,
                    market_engine,
                    decision_id,
                    horizon_minutes,
                    timeframe=timeframe,
                    hold_band=hold_band,
                    max_gap=max_gap,
                )
            )
        except NotFoundError:
            not_due.append(decision_id)
    return Sweep(evaluated, not_due)
