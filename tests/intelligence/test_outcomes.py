"""Outcome evaluation details on real candles, and calibration buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.intelligence import calibration_report, decide, evaluate_decision
from cryptotrading.intelligence import record_insight as insight
from cryptotrading.intelligence.reports import bucket_of
from cryptotrading.trading.prices import candle_at_or_after


def _decision(
    engine: Engine,
    when: datetime,
    *,
    confidence: float = 0.6,
    recommendation: str = "buy",
    quantity: str | None = None,
    price: str | None = None,
) -> int:
    row = insight(
        engine,
        symbol="BTC/USDT",
        insight_type="t",
        recommendation=recommendation,
        confidence=confidence,
    )
    return decide(engine, row.id, decided_at=when, quantity=quantity, price=price).id


def test_outage_gap_is_refused_unless_allowed(
    app_engine: Engine, market_engine: Engine, candles: dict[str, int]
) -> None:
    # Binance outage 2020-12-21 15:00-17:00 UTC: the horizon lands in it
    decided = datetime(2020, 12, 21, 13, 30, tzinfo=UTC)
    decision = _decision(app_engine, decided)
    with pytest.raises(NotFoundError, match="within 1:00:00"):
        evaluate_decision(app_engine, market_engine, decision, 120, max_gap=timedelta(hours=1))
    outcome = evaluate_decision(app_engine, market_engine, decision, 120)  # default 6 h
    assert outcome.details is not None
    assert outcome.details["exit_candle"]["time"] == "2020-12-21T18:00:00+00:00"
    entry = candle_at_or_after(market_engine, "BTC/USDT", decided).open
    assert outcome.entry_price == entry  # 14:00 candle: the first at or after 13:30
    assert outcome.details["entry_source"] == "candle open"


def test_decision_price_quantity_and_hold_band(
    app_engine: Engine, market_engine: Engine, candles: dict[str, int]
) -> None:
    when = datetime(2021, 5, 19, 0, tzinfo=UTC)  # the May 2021 crash day
    sell = _decision(app_engine, when, recommendation="sell", quantity="2", price="40000")
    outcome = evaluate_decision(app_engine, market_engine, sell, 720, timeframe="1h")
    exit_price = candle_at_or_after(market_engine, "BTC/USDT", when + timedelta(hours=12)).open
    assert outcome.entry_price == Decimal(40000)
    assert outcome.details is not None and outcome.details["entry_source"] == "decision price"
    assert outcome.profit_loss == 2 * (Decimal(40000) - exit_price)
    assert outcome.return_pct == ((Decimal(40000) - exit_price) / 40000 * 100).quantize(
        Decimal("1e-18")
    )
    assert outcome.is_correct == (exit_price < 40000)
    hold = _decision(app_engine, when, recommendation="hold")
    wide = evaluate_decision(app_engine, market_engine, hold, 60, hold_band="0.5")
    assert wide.is_correct and wide.actual_outcome == "flat" and wide.profit_loss == 0
    with pytest.raises(ValidationError, match="hold band"):
        evaluate_decision(app_engine, market_engine, hold, 120, hold_band="-1")


def test_buckets_and_widths(
    app_engine: Engine, market_engine: Engine, candles: dict[str, int]
) -> None:
    assert bucket_of(0.0, 0.1) == "0.00-0.10"
    assert bucket_of(0.7, 0.1) == "0.70-0.80"
    assert bucket_of(1.0, 0.1) == "0.90-1.00"
    assert bucket_of(0.5, 0.25) == "0.50-0.75"
    start = datetime(2021, 3, 1, tzinfo=UTC)
    for day, confidence in enumerate((0.55, 0.65, 0.95, 1.0)):
        decision = _decision(app_engine, start + timedelta(days=day), confidence=confidence)
        evaluate_decision(app_engine, market_engine, decision, 60)
    halves = calibration_report(app_engine, by=("bucket",), bucket_width=0.5)
    assert [(r.key["bucket"], r.count) for r in halves] == [("0.50-1.00", 4)]
    tenths = calibration_report(app_engine, by=("bucket",))
    assert [(r.key["bucket"], r.count) for r in tenths] == [
        ("0.50-0.60", 1),
        ("0.60-0.70", 1),
        ("0.90-1.00", 2),
    ]
    assert calibration_report(app_engine, by=())[0].key == {}
    assert calibration_report(app_engine, by=("model",))[0].key == {"model": "(none)"}
    with pytest.raises(ValidationError, match="does not divide"):
        calibration_report(app_engine, bucket_width=0.3)
