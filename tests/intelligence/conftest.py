"""Fixtures of the intelligence tests: real Binance candles."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.helpers import load_candles


@pytest.fixture
def candles(market_engine: Engine, market_data_dir: Path) -> dict[str, int]:
    """BTC/USDT and ETH/USDT 1h candles (2020-12 .. 2021-07) in time_series."""
    return {
        symbol: load_candles(market_engine, market_data_dir, symbol)
        for symbol in ("BTC/USDT", "ETH/USDT")
    }
