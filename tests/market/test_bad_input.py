"""Invalid candles are rejected with the first bad row named, and nothing is written."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from cryptotrading.errors import ValidationError
from cryptotrading.market import MarketStore
from tests.helpers import load_rows

SYMBOL = "BTC/USDT"


def _stored_rows(market: MarketStore) -> int:
    return sum(info.rows for info in market.series())


def _with(rows: list[list[Any]], index: int, column: int, value: float) -> list[list[Any]]:
    copy = [list(row) for row in rows]
    copy[index][column] = value
    return copy


@pytest.fixture
def good(binance_dir: Path) -> list[list[Any]]:
    return load_rows(binance_dir / "BTC_USDT-1h.json")[:50]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: _with(r, 7, 4, math.nan), "row 7 .*close is NaN"),
        (lambda r: _with(r, 9, 1, -1.0), "row 9 .*open is not a positive price"),
        (lambda r: _with(r, 3, 5, -0.5), "row 3 .*volume is negative"),
        (lambda r: _with(_with(r, 11, 2, 1.0), 11, 3, 2.0), "row 11 .*high is below low"),
        (lambda r: _with(r, 12, 2, r[12][3]), "row 12 .*high is below open or close"),
        (lambda r: [*r[:20], r[19], *r[20:]], "row 20 .*duplicate timestamp"),
        (lambda r: [*r[:5], r[6], r[5], *r[7:]], "row 6 .*unsorted"),
        (lambda r: _with(r, 30, 0, r[30][0] + 60_000), "row 30 .*not on the 1h grid"),
        (lambda r: _with(r, 2, 3, math.inf), "row 2 .*low is NaN or infinite"),
    ],
)
def test_bad_row_rejected_nothing_written(
    market: MarketStore, good: list[list[Any]], mutate: Any, message: str
) -> None:
    market.write_ohlcv(good[:5], symbol="ETH/USDT", timeframe="1h")
    before = market.read_ohlcv("ETH/USDT", "1h", as_="numpy")
    with pytest.raises(ValidationError, match=message) as info:
        market.write_ohlcv(mutate(good), symbol=SYMBOL, timeframe="1h")
    assert "nothing was written" in str(info.value)
    assert info.value.hint
    assert market.series()[0].symbol == "ETH/USDT"
    assert _stored_rows(market) == 5
    assert (market.read_ohlcv("ETH/USDT", "1h", as_="numpy") == before).all()


@pytest.mark.parametrize("timeframe", ["5M", "1y", "7x", "0m", "", "h1", "5 m"])
def test_unknown_timeframe(market: MarketStore, good: list[list[Any]], timeframe: str) -> None:
    with pytest.raises(ValidationError, match="unknown timeframe"):
        market.write_ohlcv(good, symbol=SYMBOL, timeframe=timeframe)
    assert _stored_rows(market) == 0


def test_bad_shapes_and_names(market: MarketStore, good: list[list[Any]]) -> None:
    with pytest.raises(ValidationError, match="6 values"):
        market.write_ohlcv([row[:5] for row in good], symbol=SYMBOL, timeframe="1h")
    with pytest.raises(ValidationError, match="not a whole number"):
        market.write_ohlcv(_with(good, 4, 0, good[4][0] + 0.5), symbol=SYMBOL, timeframe="1h")
    with pytest.raises(ValidationError, match="invalid symbol"):
        market.write_ohlcv(good, symbol="", timeframe="1h")
    with pytest.raises(ValidationError, match="longer than 32"):
        market.write_ohlcv(good, symbol=SYMBOL, timeframe="1h", exchange="x" * 33)
    with pytest.raises(ValidationError, match="cannot read candles"):
        market.write_ohlcv([["a", 1, 2, 3, 4, 5]], symbol=SYMBOL, timeframe="1h")
    assert _stored_rows(market) == 0


def test_dataframe_missing_column(market: MarketStore, good: list[list[Any]]) -> None:
    import pandas as pd

    frame = pd.DataFrame(good, columns=["timestamp", "open", "high", "low", "close", "vol"])
    with pytest.raises(ValidationError, match="missing column"):
        market.write_ohlcv(frame, symbol=SYMBOL, timeframe="1h")
    assert _stored_rows(market) == 0


def test_unknown_output_and_missing_data(market: MarketStore, good: list[list[Any]]) -> None:
    from cryptotrading.errors import NotFoundError

    market.write_ohlcv(good, symbol=SYMBOL, timeframe="1h")
    with pytest.raises(ValidationError, match="unknown output kind"):
        market.read_ohlcv(SYMBOL, "1h", as_="polars")
    with pytest.raises(NotFoundError, match="no 5m candles for BTC/USDT"):
        market.read_ohlcv(SYMBOL, "5m")
    with pytest.raises(ValidationError, match="cannot parse date"):
        market.read_ohlcv(SYMBOL, "1h", start="yesterday-ish")
