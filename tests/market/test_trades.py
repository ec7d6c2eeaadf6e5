"""Candles built from real trades (Freqtrade, ccxt and Nautilus files)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptotrading.errors import ValidationError
from cryptotrading.market import MarketStore, parse_timeframe
from cryptotrading.market.trades import read_trades_file, to_trades, trades_to_candles
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import invoke, invoke_json

OHLCV = ["open", "high", "low", "close", "volume"]
T = 1_609_459_200_000  # 2021-01-01T00:00Z


@pytest.fixture(scope="module")
def freqtrade(market_data_dir: Path) -> Path:
    return market_data_dir / "freqtrade_testdata"


def _expected_1m(freqtrade: Path) -> pd.DataFrame:
    """Freqtrade's own 1m candles of the same XRP/ETH trades."""
    frame = pd.read_feather(freqtrade / "XRP_ETH-1m.feather")
    return frame.assign(timestamp=frame["date"].dt.as_unit("ms").astype("int64"))


def test_freqtrade_and_ccxt_trades_rebuild_freqtrades_candles(freqtrade: Path) -> None:
    """12,477 real Binance XRP/ETH trades, in Freqtrade rows and as ccxt trade dicts,
    give exactly the 2,469 1m candles Freqtrade derived from them."""
    expected = _expected_1m(freqtrade)
    for name in ("XRP_ETH-trades.json.gz", "XRP_OLD-trades.json.gz"):
        trades = read_trades_file(freqtrade / name)
        assert len(trades) == 12_477
        candles = trades_to_candles(trades, parse_timeframe("1m"))
        assert candles.timestamp.tolist() == expected["timestamp"].tolist()
        for column in OHLCV:
            assert getattr(candles, column).tolist() == expected[column].tolist(), (name, column)


def test_parquet_trades_match_pandas(market_data_dir: Path) -> None:
    path = market_data_dir / "nautilus_testdata" / "btcusdt-trades.parquet"
    trades = read_trades_file(path)
    raw = pd.read_parquet(path).set_index("timestamp")
    for timeframe, rule in (("1s", "1s"), ("5s", "5s"), ("1m", "1min")):
        candles = trades_to_candles(trades, parse_timeframe(timeframe))
        grouped = raw.resample(rule)
        expected = pd.DataFrame(
            {
                "open": grouped["price"].first(),
                "high": grouped["price"].max(),
                "low": grouped["price"].min(),
                "close": grouped["price"].last(),
                "volume": grouped["quantity"].sum(),
            }
        ).dropna(subset=["open"])
        assert candles.timestamp.tolist() == expected.index.as_unit("ms").asi8.tolist()
        for column in OHLCV[:4]:
            assert getattr(candles, column).tolist() == expected[column].tolist()
        assert np.allclose(candles.volume, expected["volume"], rtol=1e-12)


def test_unsorted_trades_are_ordered_and_file_order_kept_within_a_millisecond() -> None:
    trades = to_trades([[T + 60_500, 2.0, 1.0], [T, 5.0, 1.0], [T, 4.0, 2.0]])
    candles = trades_to_candles(trades, parse_timeframe("1m"))
    assert candles.timestamp.tolist() == [T, T + 60_000]
    assert (candles.open[0], candles.close[0], candles.volume[0]) == (5.0, 4.0, 3.0)


@pytest.mark.parametrize(
    ("trades", "message"),
    [
        ([[T, -1.0, 1.0]], "trade 0 .*price is missing, not finite or not positive"),
        ([[T, 1.0, 1.0], [T + 1, 1.0, float("nan")]], "trade 1 .*amount is missing"),
        ([[T, 1.0, 1.0], [T + 1, 1.0, -2.0]], "trade 1 .*amount is missing"),
        ([[T, 1.0, 1.0, 5.0, 6.0]], "7 values .* or all 3"),
        ([[T, 1.0, 1.0], 5], "7 values .* or all 3"),
        ([[T, 1.0, 1.0], [T, 1.0]], "7 values .* or all 3"),
        ([{"timestamp": T, "amount": 1.0}], "no price column"),
        ([{"timestamp": T, "price": "abc", "amount": 1.0}], "price 'abc' is not a number"),
        ([{"price": 1.0, "amount": 1.0}], "no time column"),
        ("not trades", "cannot read trades from a str"),
    ],
)
def test_bad_trades_are_named(trades: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        to_trades(trades)


def test_store_and_cli_import_trades(market: MarketStore, freqtrade: Path, tmp_path: Path) -> None:
    settings: Settings = market.stores.settings
    path = freqtrade / "XRP_ETH-trades.json.gz"
    payload = invoke_json(
        settings, "market", "import-trades", str(path), "-s", "XRP/ETH", "-e", "binance", "--json"
    )
    assert (payload["rows"], payload["changed"], payload["format"]) == (2469, 2469, "json.gz")
    expected = _expected_1m(freqtrade)
    with Stores(settings) as stores:
        store = MarketStore(stores)
        stored = store.read_ohlcv("XRP/ETH", "1m")
        assert stored["timestamp"].tolist() == expected["timestamp"].tolist()
        assert stored["close"].tolist() == expected["close"].tolist()
        # idempotent, and the same candles come from the ccxt dicts through the API
        with gzip.open(freqtrade / "XRP_OLD-trades.json.gz") as handle:
            ccxt_trades = json.load(handle)
        again = store.write_trades(ccxt_trades, symbol="XRP/ETH", exchange="binance")
        assert (again.rows, again.changed) == (2469, 0)
        hourly = store.read_ohlcv("XRP/ETH", "1h")
        assert hourly["volume"].sum() == pytest.approx(expected["volume"].sum(), rel=1e-12)
    five = invoke_json(
        settings, "market", "import-trades", str(path), "-s", "XRP/ETH5", "-t", "5m", "--json"
    )
    assert five["rows"] == len(expected.set_index("date").resample("5min").first().dropna())
    # bad input: a candle file, a broken trade -- clear errors, nothing written
    candles = freqtrade / "UNITTEST_BTC-1m.json"
    result = invoke(settings, "market", "import-trades", str(candles), "-s", "BAD/ETH")
    assert result.exit_code == 5 and "7 values (Freqtrade) or all 3" in result.stderr
    with gzip.open(path) as handle:
        rows = json.load(handle)
    rows[5000][4] = 0
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(rows))
    result = invoke(settings, "market", "import-trades", str(broken), "-s", "BAD/ETH")
    assert result.exit_code == 5 and "trade 5000" in result.stderr and "hint:" in result.stderr
    listed = {item["symbol"] for item in invoke_json(settings, "market", "list", "--json")}
    assert listed == {"XRP/ETH", "XRP/ETH5"}
