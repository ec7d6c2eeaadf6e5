"""Fixtures of the market-data tests: a MarketStore on each backend and the real files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cryptotrading.market import MarketStore
from cryptotrading.stores import Stores

BINANCE = "binance_nfi_2020-12_2021-07"


@pytest.fixture
def market(stores: Stores) -> Iterator[MarketStore]:
    """The market store of the three-store layout on the current backend."""
    yield MarketStore(stores)


@pytest.fixture(scope="session")
def binance_dir(market_data_dir: Path) -> Path:
    return market_data_dir / BINANCE


def load_rows(path: Path) -> list[list[Any]]:
    """ccxt/freqtrade JSON candle rows of a real file."""
    with path.open() as handle:
        rows: list[list[Any]] = json.load(handle)
    return rows
