"""The worked example of docs/trading.md: two toy models trade BTC and ETH on real
Binance hourly candles (Jan-Mar 2021) through the whole chain, and the calibration
report tells how well their confidence matched reality.

Run it on its own (SQLite files in a fresh data dir)::

    .venv/bin/python -m tests.intelligence.worked_example \
        --market-dir ../shared/data/market --data-dir /tmp/ct-demo
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from cryptotrading.intelligence import (
    calibration_report,
    decide,
    evaluate_decision,
    execute_decision,
    format_report,
    record_analysis,
    record_insight,
)
from cryptotrading.ops.lifecycle import initialize
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from cryptotrading.trading import candle_at_or_after, fill_order, summarize
from cryptotrading.trading.portfolio import PortfolioSummary
from tests.helpers import BINANCE_DIR, load_candles, make_user

SYMBOLS = ("BTC/USDT", "ETH/USDT")
START = datetime(2021, 1, 15, tzinfo=UTC)
DAYS = 60
HORIZON = 24 * 60  # minutes
NOTIONAL = Decimal(1000)  # USDT per trade
FEE_RATE = Decimal("0.001")  # 0.1 % taker fee


@dataclass(frozen=True)
class Signal:
    model: str
    analysis_type: str
    signal: str
    recommendation: str
    confidence: float
    payload: dict[str, float]


def _closes(market_dir: Path, symbol: str) -> tuple[np.ndarray, np.ndarray]:
    rows = json.loads(
        (market_dir / BINANCE_DIR / f"{symbol.replace('/', '_')}-1h.json").read_text()
    )
    data = np.array(rows, dtype=np.float64)
    return data[:, 0].astype(np.int64), data[:, 4]


def sma_cross(closes: np.ndarray) -> Signal:
    """Trend model: 24h vs 72h moving average; confidence grows with the spread."""
    fast, slow = closes[-24:].mean(), closes[-72:].mean()
    spread = fast / slow - 1
    bullish = spread > 0
    return Signal(
        "sma-cross-24-72",
        "trend",
        "bullish" if bullish else "bearish",
        "buy" if bullish else "sell",
        round(0.5 + min(0.45, abs(spread) * 10), 4),
        {"sma_24": round(fast, 4), "sma_72": round(slow, 4)},
    )


def rsi_reversion(closes: np.ndarray) -> Signal | None:
    """Mean-reversion model: 14h RSI below 35 buys, above 65 sells, else silent."""
    deltas = np.diff(closes[-15:])
    gain, loss = deltas.clip(min=0).mean(), (-deltas).clip(min=0).mean()
    rsi = 100.0 if loss == 0 else 100 - 100 / (1 + gain / loss)
    if 35 <= rsi <= 65:
        return None
    oversold = rsi < 35
    return Signal(
        "rsi-14",
        "mean_reversion",
        "oversold" if oversold else "overbought",
        "buy" if oversold else "sell",
        round(0.5 + min(0.45, abs(rsi - 50) / 100), 4),
        {"rsi_14": round(float(rsi), 2)},
    )


def run(stores: Stores, market_dir: Path) -> tuple[str, PortfolioSummary]:
    """Load candles, trade the signals through the chain, return the report text."""
    app, market = stores.engine(stores.app), stores.engine(stores.market)
    for symbol in SYMBOLS:
        load_candles(market, market_dir, symbol)
    user = make_user(app, "demo")
    history = {symbol: _closes(market_dir, symbol) for symbol in SYMBOLS}
    for day in range(DAYS):
        now = START + timedelta(days=day)
        now_ms = int(now.timestamp() * 1000)
        for symbol in SYMBOLS:
            stamps, closes = history[symbol]
            past = closes[stamps < now_ms]  # only candles that closed before now
            for signal in (sma_cross(past), rsi_reversion(past)):
                if signal is None:
                    continue
                analysis = record_analysis(
                    app,
                    symbol=symbol,
                    model=signal.model,
                    analysis_type=signal.analysis_type,
                    signal=signal.signal,
                    confidence=signal.confidence,
                    payload=signal.payload,
                    created_at=now,
                )
                insight = record_insight(
                    app,
                    analysis_id=analysis.id,
                    insight_type="entry",
                    recommendation=signal.recommendation,
                    confidence=signal.confidence,
                    expires_at=now + timedelta(hours=1),
                    created_at=now,
                )
                price = candle_at_or_after(market, symbol, now, timeframe="1h").open
                quantity = (NOTIONAL / price).quantize(Decimal("1e-6"))
                decision = decide(app, insight.id, user_id=user, quantity=quantity, decided_at=now)
                order = execute_decision(app, decision.id, submitted_at=now).order
                fee = (price * quantity * FEE_RATE).quantize(Decimal("1e-8"))
                fill_order(app, order.order_id, price=price, amount=quantity, fee=fee, time=now)
                evaluate_decision(app, market, decision.id, HORIZON, timeframe="1h")
    report = calibration_report(app, horizon_minutes=HORIZON)
    summary = summarize(
        app, market, user, starting_cash="100000", as_of=START + timedelta(days=DAYS)
    )
    return format_report(report), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--market-dir", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    with Stores(Settings(data_dir=args.data_dir)) as stores:
        initialize(stores)
        text, summary = run(stores, args.market_dir)
    print(text)
    print()
    for key, value in summary.as_dict().items():
        if key != "positions":
            print(f"{key:>15}: {value}")


if __name__ == "__main__":
    main()
