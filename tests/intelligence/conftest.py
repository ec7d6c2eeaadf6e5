"""Fixtures of the intelligence tests: engines, a user, real Binance candles."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from cryptotrading.stores import Stores
from tests.trading.helpers import load_candles, make_user


@pytest.fixture
def app_engine(stores: Stores) -> Engine:
    return stores.engine(stores.app)


@pytest.fixture
def market_engine(stores: Stores) -> Engine:
    return stores.engine(stores.market)


@pytest.fixture
def user_id(app_engine: Engine) -> int:
    return make_user(app_engine)


@pytest.fixture
def candles(market_engine: Engine, market_data_dir: Path) -> dict[str, int]:
    """BTC/USDT and ETH/USDT 1h candles (2020-12 .. 2021-07) in time_series."""
    return {
        symbol: load_candles(market_engine, market_data_dir, symbol)
        for symbol in ("BTC/USDT", "ETH/USDT")
    }
