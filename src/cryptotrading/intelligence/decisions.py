"""The intelligence chain: analysis -> insight -> decision -> order.

* :func:`record_analysis` stores a model's view of a symbol (``ai_analyses``).
* :func:`record_insight` turns it into an actionable recommendation with a
  confidence in [0, 1] (``ai_insights``).
* :func:`decide` makes a ``trading_decisions`` row from an insight (``pending``).
* :func:`execute_decision` places the decision's order (``trading_orders.decision_id``)
  and marks the decision ``executed``, in one transaction; :func:`cancel_decision`
  marks it ``cancelled``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cryptotrading.common.checks import document, probability, text
from cryptotrading.common.clock import maybe_utc, utcnow
from cryptotrading.db import unit_of_work
from cryptotrading.db.session import read_session
from cryptotrading.errors import IntegrityViolationError, NotFoundError, ValidationError
from cryptotrading.models.intelligence import AIAnalysis, AIInsight, TradingDecision
from cryptotrading.models.users import User
from cryptotrading.trading.money import parse
from cryptotrading.trading.orders import (
    Submitted,
    after_race,
    build_request,
    create_order,
    validate_symbol,
)

#: Recommendation words and the action they lead to.
ACTIONS: dict[str, str] = {
    "buy": "buy",
    "strong_buy": "buy",
    "long": "buy",
    "accumulate": "buy",
    "sell": "sell",
    "strong_sell": "sell",
    "short": "sell",
    "reduce": "sell",
    "hold": "hold",
    "neutral": "hold",
}
DECISION_ACTIONS = ("buy", "sell", "hold")
DECISION_STATUSES = ("pending", "executed", "cancelled")


def record_analysis(
    engine: Engine,
    *,
    symbol: str,
    model: str,
    analysis_type: str,
    signal: str,
    confidence: float | None = None,
    payload: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> AIAnalysis:
    """Store one model's analysis of *symbol* (``signal`` e.g. bullish / bearish)."""
    analysis = AIAnalysis(
        symbol=validate_symbol(symbol),
        model=text(model, "model", limit=128),
        analysis_type=text(analysis_type, "analysis type", limit=64),
        signal=text(signal, "signal", limit=32),
        confidence=None if confidence is None else probability(confidence),
        payload=document(payload, "payload"),
    )
    if created_at is not None:
        analysis.created_at = analysis.updated_at = created_at
    with unit_of_work(engine, "app store") as session:
        session.add(analysis)
        session.flush()
        return analysis


def record_insight(
    engine: Engine,
    *,
    insight_type: str,
    recommendation: str,
    confidence: float,
    analysis_id: int | None = None,
    symbol: str | None = None,
    rationale: str | None = None,
    payload: dict[str, Any] | None = None,
    expires_at: datetime | None = None,
    created_at: datetime | None = None,
) -> AIInsight:
    """Store an insight; its symbol defaults to the analysis's."""
    insight = AIInsight(
        analysis_id=analysis_id,
        insight_type=text(insight_type, "insight type", limit=64),
        recommendation=text(recommendation, "recommendation", limit=64),
        confidence=probability(confidence),
        rationale=rationale,
        payload=document(payload, "payload"),
        expires_at=maybe_utc(expires_at, "expires_at"),
    )
    if created_at is not None:
        insight.created_at = insight.updated_at = created_at
    with unit_of_work(engine, "app store") as session:
        if analysis_id is not None:
            analysis = session.get(AIAnalysis, analysis_id)
            if analysis is None:
                raise NotFoundError(
                    f"analysis {analysis_id} does not exist",
                    hint="Record the analysis first, or leave out the analysis id.",
                )
            symbol = symbol or analysis.symbol
        insight.symbol = None if symbol is None else validate_symbol(symbol)
        session.add(insight)
        session.flush()
        return insight


def action_for(recommendation: str) -> str:
    """The decision action a recommendation word leads to."""
    action = ACTIONS.get(recommendation.strip().lower())
    if action is None:
        raise ValidationError(
            f"recommendation {recommendation!r} does not map to buy, sell or hold",
            hint=f"Use one of: {', '.join(ACTIONS)}, or give the action explicitly.",
        )
    return action


def decide(
    engine: Engine,
    insight_id: int,
    *,
    user_id: int | None = None,
    action: str | None = None,
    quantity: Any = None,
    price: Any = None,
    reasoning: str | None = None,
    decided_at: datetime | None = None,
) -> TradingDecision:
    """A ``pending`` decision from an insight (action from its recommendation unless
    given; confidence copied). Refused when the insight expired or has no symbol."""
    when = maybe_utc(decided_at, "decided_at") or utcnow()
    amount = None if quantity is None else parse(quantity, "quantity", positive=True)
    limit = None if price is None else parse(price, "price", positive=True, allow_zero=False)
    if action is not None and action not in DECISION_ACTIONS:
        raise ValidationError(
            f"action {action!r} is not buy, sell or hold", hint="Use buy, sell or hold."
        )
    with unit_of_work(engine, "app store") as session:
        insight = session.get(AIInsight, insight_id)
        if insight is None:
            raise NotFoundError(
                f"insight {insight_id} does not exist",
                hint="List insights with `cryptotrading decisions insights`.",
            )
        if insight.expires_at is not None and insight.expires_at <= when:
            raise ValidationError(
                f"insight {insight_id} expired at {insight.expires_at.isoformat()}",
                hint="Decide on a current insight; nothing was written.",
            )
        if insight.symbol is None:
            raise ValidationError(
                f"insight {insight_id} names no symbol", hint="Record the insight with a symbol."
            )
        if user_id is not None and session.get(User, user_id) is None:
            raise NotFoundError(f"user {user_id} does not exist", hint="Check the user id.")
        decision = TradingDecision(
            insight_id=insight.id,
            user_id=user_id,
            symbol=insight.symbol,
            action=action or action_for(insight.recommendation),
            confidence=insight.confidence,
            status="pending",
            quantity=amount,
            price=limit,
            reasoning=reasoning or insight.rationale,
            decided_at=when,
        )
        session.add(decision)
        session.flush()
        return decision


def load_decision(session: Session, decision_id: int, *, lock: bool = False) -> TradingDecision:
    """The decision (not soft-deleted), row-locked with *lock*, else NotFoundError."""
    query = select(TradingDecision).where(TradingDecision.id == decision_id)
    decision = session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if decision is None or decision.deleted_at is not None:
        raise NotFoundError(
            f"decision {decision_id} does not exist",
            hint="List decisions with `cryptotrading decisions list`.",
        )
    return decision


def execute_decision(
    engine: Engine,
    decision_id: int,
    *,
    amount: Any = None,
    order_type: str = "market",
    price: Any = None,
    stop_price: Any = None,
    exchange: str = "",
    client_order_id: str | None = None,
    submitted_at: datetime | None = None,
) -> Submitted:
    """Place the decision's order and mark it ``executed`` (one transaction).

    Idempotent: the client order id defaults to ``decision-<id>``, so executing a
    decision twice returns the first order.
    """
    coid = client_order_id or f"decision-{decision_id}"
    with read_session(engine, "app store") as session:
        snapshot = load_decision(session, decision_id)
    if snapshot.action == "hold":
        raise ValidationError(
            f"decision {decision_id} is a hold: there is no order to place",
            hint="Only buy and sell decisions are executed.",
        )
    if snapshot.user_id is None:
        raise ValidationError(
            f"decision {decision_id} has no user to trade for",
            hint="Make the decision with a user id (decide(..., user_id=...)).",
        )
    size = amount if amount is not None else snapshot.quantity
    if size is None:
        raise ValidationError(
            f"decision {decision_id} has no quantity and no amount was given",
            hint="Give the order amount (--amount).",
        )
    if order_type in ("limit", "stop_limit") and price is None:
        price = snapshot.price
    request = build_request(
        user_id=snapshot.user_id,
        symbol=snapshot.symbol,
        side=snapshot.action,
        order_type=order_type,
        amount=size,
        price=price,
        stop_price=stop_price,
        exchange=exchange,
        client_order_id=coid,
        decision_id=decision_id,
    )
    try:
        with unit_of_work(engine, "app store") as session:
            decision = load_decision(session, decision_id, lock=True)
            if decision.status == "cancelled":
                raise ValidationError(
                    f"decision {decision_id} is cancelled", hint="Make a new decision."
                )
            submitted = create_order(session, request, submitted_at=submitted_at)
            decision.status = "executed"
            return submitted
    except IntegrityViolationError:
        raced = after_race(engine, request)
        if raced is None:
            raise
        return raced


def cancel_decision(engine: Engine, decision_id: int) -> TradingDecision:
    """Mark a ``pending`` decision ``cancelled``."""
    with unit_of_work(engine, "app store") as session:
        decision = load_decision(session, decision_id, lock=True)
        if decision.status != "pending":
            raise ValidationError(
                f"decision {decision_id} is {decision.status}: only pending decisions "
                "can be cancelled",
                hint="Cancel its order instead (`cryptotrading orders cancel`).",
            )
        decision.status = "cancelled"
        return decision


def delete_decision(engine: Engine, decision_id: int) -> TradingDecision:
    """Soft-delete a decision (kept for the audit trail, hidden from lists and reports)."""
    with unit_of_work(engine, "app store") as session:
        decision = load_decision(session, decision_id, lock=True)
        decision.soft_delete()
        return decision


def get_decision(engine: Engine, decision_id: int) -> TradingDecision:
    with read_session(engine, "app store") as session:
        return load_decision(session, decision_id)


def list_decisions(
    engine: Engine,
    *,
    symbol: str | None = None,
    status: str | None = None,
    user_id: int | None = None,
    limit: int = 100,
) -> list[TradingDecision]:
    """Decisions (not soft-deleted), newest first."""
    query = (
        select(TradingDecision)
        .where(TradingDecision.deleted_at.is_(None))
        .order_by(TradingDecision.id.desc())
        .limit(limit)
    )
    if symbol is not None:
        query = query.where(TradingDecision.symbol == symbol)
    if status is not None:
        query = query.where(TradingDecision.status == status)
    if user_id is not None:
        query = query.where(TradingDecision.user_id == user_id)
    with read_session(engine, "app store") as session:
        return list(session.execute(query).scalars())


def list_insights(
    engine: Engine, *, symbol: str | None = None, limit: int = 100
) -> list[AIInsight]:
    """Insights, newest first."""
    query = select(AIInsight).order_by(AIInsight.id.desc()).limit(limit)
    if symbol is not None:
        query = query.where(AIInsight.symbol == symbol)
    with read_session(engine, "app store") as session:
        return list(session.execute(query).scalars())
