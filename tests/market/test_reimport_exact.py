"""Re-importing a corrected series stores exactly the new values, on both backends.

Issue 10: the SQLite shortcut that skipped 10,000-row chunks on equal checksums lost
corrections (a small change drowned in the rounding of a large sum; a stored 1e308
made the sums infinite). Every skip is now decided value for value.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cryptotrading.cli import app
from cryptotrading.market import MarketStore
from cryptotrading.market.candles import VALUE_COLUMNS
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, load_rows, settings_env

ROWS = 30_001  # spans the old chunk boundaries at 10,000, 20,000 and 30,000
BOUNDARIES = [0, 1, 9_999, 10_000, 10_001, 19_999, 20_000, 29_999, 30_000]
COLUMN_INDEX = {name: i + 1 for i, name in enumerate(VALUE_COLUMNS)}


@functools.cache
def _real_rows(path: Path) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in load_rows(path)[:ROWS])


class Rows(list[list[float]]):
    """The real candles, with a short repr for Hypothesis' failure reports."""

    def __repr__(self) -> str:
        return f"<{len(self)} real BTC/USDT 5m candles>"


@pytest.fixture
def base_rows(binance_dir: Path) -> Rows:
    return Rows(list(row) for row in _real_rows(binance_dir / "BTC_USDT-5m.json"))


def _new_value(row: list[float], column: str, kind: str) -> float:
    """A value for *column* of *row* that keeps the candle valid: tiny, huge or edge."""
    o, h, low, c, v = row[1:6]
    if column == "volume":
        return {
            "tiny": float(np.nextafter(v, np.inf)),
            "huge": 1e308,
            "edge": 5e-324,
            "zero": -0.0,
        }[kind]
    if column == "high":
        return {
            "tiny": float(np.nextafter(h, np.inf)),
            "huge": 1e308,
            "edge": h * 2,
            "zero": h + 0.01,
        }[kind]
    if column == "low":
        return {
            "tiny": float(np.nextafter(low, 0.0)),
            "huge": max(low / 1e300, 5e-324),  # stays a positive price when repeated
            "edge": 5e-324,
            "zero": max(low - 0.01, 5e-324),
        }[kind]
    current = o if column == "open" else c
    return {
        "tiny": float(np.nextafter(current, h if current < h else low)),
        "huge": h,
        "edge": low,
        "zero": (h + low) / 2,
    }[kind]


def _valid(row: list[float]) -> bool:
    """Whether a candle passes validation (positive prices, low <= open, close <= high)."""
    o, h, low, c, v = row[1:6]
    return min(o, h, low, c) > 0 and v >= 0 and low <= min(o, c) and h >= max(o, c)


change = st.tuples(
    st.one_of(st.sampled_from(BOUNDARIES), st.integers(0, ROWS - 1)),
    st.sampled_from(VALUE_COLUMNS),
    st.sampled_from(["tiny", "huge", "edge", "zero"]),
)


def _stored(market: MarketStore) -> np.ndarray:
    if not market.series():
        return np.empty(0, _STORED_DTYPE)
    return np.asarray(market.read_ohlcv("BTC/USDT", "5m", as_="numpy"))


def _as_records(rows: list[list[float]]) -> np.ndarray:
    array = np.asarray(rows, dtype=np.float64)
    out = np.empty(len(rows), _STORED_DTYPE)
    out["timestamp"] = array[:, 0].astype(np.int64)
    for name, i in COLUMN_INDEX.items():
        out[name] = array[:, i]
    return out


_STORED_DTYPE = np.dtype([("timestamp", "<i8")] + [(name, "<f8") for name in VALUE_COLUMNS])


def _assert_same(stored: np.ndarray, expected: np.ndarray) -> None:
    assert len(stored) == len(expected)
    for name in _STORED_DTYPE.names or ():
        # numeric equality (0.0 == -0.0) and no -0.0 ever stored
        assert np.array_equal(stored[name], expected[name]), name
        if name != "timestamp":
            assert not np.signbit(stored[name]).any(), name


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=st.lists(change, min_size=1, max_size=3))
def test_reimport_stores_exactly_the_changed_values(
    market: MarketStore, base_rows: list[list[float]], changes: list[tuple[int, str, str]]
) -> None:
    """Each re-import changes one value of the current series: exactly that row is
    reported changed (none when the value is numerically equal) and every stored value
    equals the imported one; re-importing the original restores it exactly."""
    # every example starts from the real series (a failed example may have left edits)
    market.write_ohlcv(base_rows, symbol="BTC/USDT", timeframe="5m")
    current = [list(row) for row in base_rows]
    touched: set[int] = set()
    for position, column, kind in changes:
        row = current[position]
        value = _new_value(row, column, kind)
        if not _valid([*row[: COLUMN_INDEX[column]], value, *row[COLUMN_INDEX[column] + 1 :]]):
            continue  # e.g. a low nudged below the smallest positive float
        differs = value != row[COLUMN_INDEX[column]]
        row[COLUMN_INDEX[column]] = value
        result = market.write_ohlcv(current, symbol="BTC/USDT", timeframe="5m")
        assert result.changed == int(differs), (position, column, kind)
        assert result.rows == ROWS
        touched |= {position} if differs else set()
        _assert_same(_stored(market), _as_records(current))
    original, edited = _as_records(base_rows), _as_records(current)
    differing = np.zeros(ROWS, bool)
    for name in VALUE_COLUMNS:
        differing |= original[name] != edited[name]
    assert set(np.flatnonzero(differing)) <= touched
    restored = market.write_ohlcv(base_rows, symbol="BTC/USDT", timeframe="5m")
    assert restored.changed == int(differing.sum())
    _assert_same(_stored(market), original)


def test_negative_zero_is_zero(market: MarketStore, base_rows: list[list[float]]) -> None:
    rows = [list(row) for row in base_rows[:100]]
    rows[5][5] = 0.0
    market.write_ohlcv(rows, symbol="BTC/USDT", timeframe="5m")
    rows[5][5] = -0.0
    assert market.write_ohlcv(rows, symbol="BTC/USDT", timeframe="5m").changed == 0
    fresh = [list(row) for row in base_rows[100:200]]
    fresh[0][5] = -0.0
    assert market.write_ohlcv(fresh, symbol="BTC/USDT", timeframe="5m").changed == 100
    stored = _stored(market)
    assert not np.signbit(stored["volume"]).any()


runner = CliRunner()


def _cli_json(settings: Settings, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--json"], env=settings_env(settings))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_reimport_of_exchange_corrections(
    make_settings: SettingsFactory, binance_dir: Path, tmp_path: Path
) -> None:
    """The issue's reproduction: four closes raised by 0.01 in a re-imported file."""
    settings = make_settings("three")
    source = binance_dir / "BTC_USDT-5m.json"
    rows = load_rows(source)
    args = ("-s", "BTC/USDT", "-t", "5m", "-e", "binance")
    _cli_json(settings, "market", "import", str(source), *args)
    fixed = [list(row) for row in rows]
    for i in (0, 10_000, 20_000, 30_000):
        fixed[i][4] = fixed[i][4] + 0.01
        fixed[i][2] = max(fixed[i][2], fixed[i][4])
    fixed_file = tmp_path / "BTC_USDT-5m-fixed.json"
    fixed_file.write_text(json.dumps(fixed))
    report = _cli_json(settings, "market", "import", str(fixed_file), *args)
    assert report["changed"] == 4, report
    with Stores(settings) as stores:
        stored = MarketStore(stores).read_ohlcv("BTC/USDT", "5m", exchange="binance", as_="numpy")
    for i in (0, 10_000, 20_000, 30_000):
        assert stored["close"][i] == fixed[i][4]
    assert _cli_json(settings, "market", "import", str(fixed_file), *args)["changed"] == 0
