"""Fixtures of the market-data tests: a MarketStore on each backend and the real files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptotrading.market import MarketStore
from cryptotrading.stores import Stores
from tests.helpers import BINANCE_DIR


@pytest.fixture
def market(stores: Stores) -> Iterator[MarketStore]:
    """The market store of the three-store layout on the current backend."""
    yield MarketStore(stores)


@pytest.fixture(scope="session")
def binance_dir(market_data_dir: Path) -> Path:
    """The real Binance candles (BTC/ETH 1h and 5m, 2020-12 .. 2021-07)."""
    return market_data_dir / BINANCE_DIR
