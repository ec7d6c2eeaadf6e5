"""Times and durations outside what a candle can have are named errors, on both
backends (the fuzz suite found OverflowError tracebacks here)."""

from __future__ import annotations

import pytest

from cryptotrading.errors import ValidationError
from cryptotrading.market.store import to_epoch_ms
from cryptotrading.market.tickers import aggregate
from cryptotrading.stores import Stores
from tests.helpers import invoke

ROWS = [[1_609_459_200_000 + i * 3_600_000, 100.0, 101.0, 99.0, 100.5, 10.0] for i in range(3)]
BOUNDS = [
    "--end=0001-01-01",
    "--start=9999-01-01",
    "--start=1969-12-31",
    "--end=2100-01-02",
    "--start=99999999999999999999999",
    "--start=-5",
]


@pytest.mark.parametrize("bound", BOUNDS)
@pytest.mark.parametrize("command", ["show", "gaps", "panel", "export"])
def test_market_time_bounds_outside_the_calendar(
    stores: Stores, tmp_path: pytest.TempPathFactory, command: str, bound: str
) -> None:
    from cryptotrading.market import MarketStore

    MarketStore(stores).write_ohlcv(ROWS, symbol="BTC/USDT", timeframe="1h")
    out = str(tmp_path / "o.csv")  # type: ignore[operator]
    target = ["BTC/USDT"] if command != "export" else ["--symbol=BTC/USDT", out]
    result = invoke(stores.settings, "market", command, bound, *target)
    assert result.exit_code in (2, 5), result.output
    if result.exit_code == 5:
        assert "outside 1970-01-01..2099-12-31" in result.stderr or "cannot" in result.stderr
        assert "hint:" in result.stderr


def test_to_epoch_ms_accepts_the_calendar_edges() -> None:
    assert to_epoch_ms("1970-01-01") == 0
    assert to_epoch_ms("2100-01-01") == 4_102_444_800_000  # an exclusive end bound
    for bad in ("0001-01-01", "9999-12-31", -1, 10**30, "2100-01-01T00:00:01"):
        with pytest.raises(ValidationError):
            to_epoch_ms(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_age", ["nan", "inf", "-1", "0", "1e300"])
def test_aggregate_max_age_out_of_range(stores: Stores, max_age: str) -> None:
    result = invoke(stores.settings, "market", "aggregate", "BTC/USDT", "--max-age", max_age)
    assert result.exit_code == 5 and "maximum age" in result.stderr, result.output
    with pytest.raises(ValidationError, match="maximum age"):
        aggregate(stores, "BTC/USDT", max_age=float(max_age))
