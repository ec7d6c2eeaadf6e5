"""The worked example of docs/trading.md runs on both backends and its report is
consistent with the stored outcomes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from cryptotrading.db import unit_of_work
from cryptotrading.intelligence import calibration_report
from cryptotrading.models.intelligence import DecisionOutcome
from cryptotrading.models.trading import TradingOrder
from cryptotrading.stores import Stores
from tests.intelligence.worked_example import HORIZON, run


def test_worked_example(stores: Stores, market_data_dir: Path) -> None:
    text, summary = run(stores, market_data_dir)
    app = stores.engine(stores.app)
    rows = calibration_report(app, horizon_minutes=HORIZON)
    with unit_of_work(app) as session:
        outcomes = session.scalar(select(func.count()).select_from(DecisionOutcome))
        hits = session.scalar(
            select(func.count())
            .select_from(DecisionOutcome)
            .where(DecisionOutcome.is_correct.is_(True))
        )
        filled = session.scalar(
            select(func.count()).select_from(TradingOrder).where(TradingOrder.status == "filled")
        )
    assert outcomes == filled == sum(r.count for r in rows) >= 120
    assert hits == sum(r.hits for r in rows)
    assert {r.key["model"] for r in rows} == {"sma-cross-24-72", "rsi-14"}
    assert "sma-cross-24-72" in text and "hit rate" in text
    # equity is exact (cash + marked value); the P&L attribution agrees to 1e-15
    assert summary.fees_paid > 0
    attribution = (
        summary.starting_cash + summary.realized_pnl - summary.fees_paid + summary.unrealized_pnl
    )
    assert abs(summary.equity - attribution) < Decimal("1e-15")
    assert summary.equity == summary.cash + summary.net_exposure
