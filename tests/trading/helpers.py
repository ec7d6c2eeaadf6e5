"""Test helpers shared by the trading and intelligence tests: users and candles."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, insert

from cryptotrading.db import unit_of_work
from cryptotrading.models.market import TimeSeries
from cryptotrading.models.users import User

BINANCE_DIR = "binance_nfi_2020-12_2021-07"


def make_user(engine: Engine, name: str = "alice") -> int:
    """A user row (the users service is another package; a plain ORM insert here)."""
    with unit_of_work(engine) as session:
        user = User(username=name, email=f"{name}@example.com", password_hash="x")
        session.add(user)
        session.flush()
        return user.id


def load_candles(
    engine: Engine, market_dir: Path, symbol: str, frequency: str = "1h", exchange: str = ""
) -> int:
    """Load a real Binance ccxt JSON file into ``time_series`` (plain Core insert)."""
    path = market_dir / BINANCE_DIR / f"{symbol.replace('/', '_')}-{frequency}.json"
    rows = json.loads(path.read_text())
    now = int(time.time() * 1000)
    values = [
        {
            "symbol": symbol,
            "frequency": frequency,
            "timestamp": int(ts),
            "exchange": exchange,
            "open": float(o),
            "high": float(h),
            "low": float(low),
            "close": float(c),
            "volume": float(v),
            "ingested_at": now,
        }
        for ts, o, h, low, c, v in rows
    ]
    with engine.begin() as connection:
        connection.execute(insert(TimeSeries), values)
    return len(values)


def insert_candle(
    engine: Engine,
    symbol: str,
    when: datetime,
    *,
    close: float,
    frequency: str = "1h",
    exchange: str = "",
) -> None:
    """One candle (open = high = low = close) at *when*."""
    row = {
        "symbol": symbol,
        "frequency": frequency,
        "timestamp": int(when.timestamp() * 1000),
        "exchange": exchange,
        "open": close,
        "high": close,
        "low": close,
        "close": close,
        "volume": 1.0,
        "ingested_at": int(time.time() * 1000),
    }
    with engine.begin() as connection:
        connection.execute(insert(TimeSeries), [row])
