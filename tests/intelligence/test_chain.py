"""The whole chain on real Binance candles:
analysis -> insight -> decision -> order -> fill -> position -> outcome -> report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from cryptotrading.db import unit_of_work
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.intelligence import (
    calibration_report,
    decide,
    evaluate_decision,
    evaluate_pending,
    execute_decision,
    record_analysis,
    record_insight,
)
from cryptotrading.intelligence.decisions import (
    cancel_decision,
    delete_decision,
    get_decision,
    list_decisions,
)
from cryptotrading.models.intelligence import DecisionOutcome, TradingDecision
from cryptotrading.models.trading import TradingOrder
from cryptotrading.trading import fill_order, get_order, get_position, submit_order, summarize
from cryptotrading.trading.prices import candle_at_or_after, latest_price

DECIDED = datetime(2021, 1, 4, 0, 0, tzinfo=UTC)


def _open_at(market_data_dir: Path, symbol: str, when: datetime) -> Decimal:
    """Independent look-up: the open of the candle at *when*, straight from the file."""
    path = market_data_dir / "binance_nfi_2020-12_2021-07" / f"{symbol.replace('/', '_')}-1h.json"
    ms = int(when.timestamp() * 1000)
    row = next(r for r in json.loads(path.read_text()) if r[0] >= ms)
    return Decimal(repr(float(row[1])))


def test_whole_chain_on_real_candles(
    app_engine: Engine,
    market_engine: Engine,
    user_id: int,
    candles: dict[str, int],
    market_data_dir: Path,
) -> None:
    assert candles == {"BTC/USDT": 5482, "ETH/USDT": 5482}
    analysis = record_analysis(
        app_engine,
        symbol="BTC/USDT",
        model="sma-cross-24-72",
        analysis_type="technical",
        signal="bullish",
        confidence=0.72,
        payload={"sma_24": "32000", "sma_72": "30500"},
        created_at=DECIDED,
    )
    insight = record_insight(
        app_engine,
        analysis_id=analysis.id,
        insight_type="entry",
        recommendation="buy",
        confidence=0.72,
        rationale="24h average crossed above the 72h average",
        expires_at=DECIDED + timedelta(hours=1),
    )
    assert insight.symbol == "BTC/USDT"
    decision = decide(app_engine, insight.id, user_id=user_id, quantity="0.5", decided_at=DECIDED)
    assert (decision.action, decision.status, decision.confidence) == ("buy", "pending", 0.72)

    submitted = execute_decision(app_engine, decision.id)
    assert submitted.created and submitted.order.decision_id == decision.id
    again = execute_decision(app_engine, decision.id)  # idempotent
    assert not again.created and again.order.order_id == submitted.order.order_id
    assert get_decision(app_engine, decision.id).status == "executed"

    entry_candle = candle_at_or_after(market_engine, "BTC/USDT", DECIDED, timeframe="1h")
    entry = entry_candle.open
    assert entry == _open_at(market_data_dir, "BTC/USDT", DECIDED)
    fee = (entry * Decimal("0.5") * Decimal("0.001")).quantize(Decimal("1e-8"))
    fill_order(
        app_engine, submitted.order.order_id, price=entry, amount="0.5", fee=fee, time=DECIDED
    )
    order = get_order(app_engine, submitted.order.order_id)
    assert order.status == "filled" and order.average_fill_price == entry
    position = get_position(app_engine, user_id, "BTC/USDT")
    assert position.quantity == Decimal("0.5") and position.average_entry_price == entry

    outcome = evaluate_decision(app_engine, market_engine, decision.id, 24 * 60, timeframe="1h")
    exit_price = _open_at(market_data_dir, "BTC/USDT", DECIDED + timedelta(days=1))
    assert outcome.entry_price == entry and outcome.exit_price == exit_price
    expected_pnl = Decimal("0.5") * (exit_price - entry) - fee
    assert outcome.profit_loss == expected_pnl
    expected_return = (exit_price / entry - 1) * 100
    assert outcome.return_pct is not None
    assert abs(outcome.return_pct - expected_return) < Decimal("1e-17")
    assert outcome.is_correct == (exit_price > entry)
    assert outcome.details is not None and outcome.details["entry_source"] == "fills"
    assert outcome.details["order_ids"] == [order.order_id]
    # evaluating again returns the same outcome, no duplicate row
    assert evaluate_decision(app_engine, market_engine, decision.id, 1440).id == outcome.id

    summary = summarize(
        app_engine, market_engine, user_id, starting_cash="20000", as_of=DECIDED + timedelta(days=1)
    )
    close = latest_price(market_engine, "BTC/USDT", as_of=DECIDED + timedelta(days=1))
    assert summary.unrealized_pnl == Decimal("0.5") * (close - entry)
    assert summary.equity == Decimal(20000) + Decimal("0.5") * (close - entry) - fee

    report = calibration_report(app_engine, horizon_minutes=1440)
    assert len(report) == 1
    row = report[0]
    assert row.key == {
        "model": "sma-cross-24-72",
        "analysis_type": "technical",
        "bucket": "0.70-0.80",
    }
    assert (row.count, row.hits) == (1, int(outcome.is_correct or False))
    assert row.average_pnl == expected_pnl


def test_hold_and_sell_decisions_and_sweep(
    app_engine: Engine, market_engine: Engine, user_id: int, candles: dict[str, int]
) -> None:
    ids = {}
    for recommendation, conf in (("strong_sell", 0.9), ("hold", 0.55), ("buy", 0.61)):
        insight = record_insight(
            app_engine,
            symbol="ETH/USDT",
            insight_type="swing",
            recommendation=recommendation,
            confidence=conf,
        )
        ids[recommendation] = decide(app_engine, insight.id, user_id=user_id, decided_at=DECIDED).id
    late = record_insight(
        app_engine, symbol="ETH/USDT", insight_type="swing", recommendation="buy", confidence=0.5
    )
    future = decide(app_engine, late.id, decided_at=datetime(2021, 7, 17, 20, tzinfo=UTC)).id
    cancel_decision(app_engine, ids["buy"])

    sweep = evaluate_pending(app_engine, market_engine, 60 * 6, timeframe="1h")
    assert sorted(o.decision_id for o in sweep.evaluated) == sorted(
        [ids["strong_sell"], ids["hold"]]
    )
    assert sweep.not_due == [future]  # no candle 6 hours after the data ends
    by_id = {o.decision_id: o for o in sweep.evaluated}
    sell, hold = by_id[ids["strong_sell"]], by_id[ids["hold"]]
    move = sell.exit_price / sell.entry_price - 1  # type: ignore[operator]
    assert sell.is_correct == (move < 0)
    assert sell.profit_loss is None  # no quantity, no order
    assert hold.profit_loss == 0 and hold.is_correct == (abs(move) <= Decimal("0.01"))
    rows = calibration_report(app_engine, by=("action",))
    assert {r.key["action"]: r.count for r in rows} == {"hold": 1, "sell": 1}
    assert calibration_report(app_engine, by=(), horizon_minutes=1)[0:] == []


def test_bad_chain_inputs_write_nothing(
    app_engine: Engine, market_engine: Engine, user_id: int, candles: dict[str, int]
) -> None:
    with pytest.raises(ValidationError, match=r"outside 0\.\.1"):
        record_insight(
            app_engine, symbol="BTC/USDT", insight_type="x", recommendation="buy", confidence=1.5
        )
    with pytest.raises(ValidationError, match="not a ccxt symbol"):
        record_analysis(app_engine, symbol="BTC", model="m", analysis_type="t", signal="bullish")
    with pytest.raises(NotFoundError, match="analysis 99 does not exist"):
        record_insight(
            app_engine, analysis_id=99, insight_type="x", recommendation="buy", confidence=0.5
        )
    odd = record_insight(
        app_engine, symbol="BTC/USDT", insight_type="x", recommendation="moon", confidence=0.5
    )
    with pytest.raises(ValidationError, match="does not map to buy, sell or hold"):
        decide(app_engine, odd.id)
    stale = record_insight(
        app_engine,
        symbol="BTC/USDT",
        insight_type="x",
        recommendation="buy",
        confidence=0.5,
        expires_at=DECIDED,
    )
    with pytest.raises(ValidationError, match="expired"):
        decide(app_engine, stale.id, decided_at=DECIDED + timedelta(minutes=1))
    hold = decide(app_engine, odd.id, action="hold", user_id=user_id, decided_at=DECIDED)
    with pytest.raises(ValidationError, match="is a hold"):
        execute_decision(app_engine, hold.id)
    anonymous = decide(app_engine, stale.id, decided_at=DECIDED - timedelta(hours=1))
    with pytest.raises(ValidationError, match="has no user"):
        execute_decision(app_engine, anonymous.id, amount="1")
    mine = decide(app_engine, stale.id, user_id=user_id, decided_at=DECIDED - timedelta(hours=1))
    with pytest.raises(ValidationError, match="no quantity"):
        execute_decision(app_engine, mine.id)
    with pytest.raises(ValidationError, match="not a number of minutes"):
        evaluate_decision(app_engine, market_engine, mine.id, 0)
    with pytest.raises(NotFoundError, match="decision 12345"):
        evaluate_decision(app_engine, market_engine, 12345, 60)
    with pytest.raises(ValidationError, match="cannot group by"):
        calibration_report(app_engine, by=("colour",))
    with pytest.raises(NotFoundError, match="decision 4242 does not exist"):
        submit_order(
            app_engine,
            user_id=user_id,
            symbol="BTC/USDT",
            side="buy",
            order_type="market",
            amount="1",
            decision_id=4242,
        )
    with unit_of_work(app_engine) as session:
        assert session.scalar(select(func.count()).select_from(DecisionOutcome)) == 0
        assert session.scalar(select(func.count()).select_from(TradingOrder)) == 0
        statuses = session.execute(select(TradingDecision.status)).scalars().all()
        assert sorted(statuses) == ["pending", "pending", "pending"]
    delete_decision(app_engine, mine.id)
    assert mine.id not in [d.id for d in list_decisions(app_engine)]
    with pytest.raises(NotFoundError, match=f"decision {mine.id} does not exist"):
        evaluate_decision(app_engine, market_engine, mine.id, 60)
