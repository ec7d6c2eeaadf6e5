"""Resampling agrees with pandas on arbitrary valid candles (pure functions, no store)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptotrading.market import Candles, parse_timeframe, resample
from cryptotrading.market.quality import gaps_in

MINUTE = 60_000


@st.composite
def candle_series(draw: st.DrawFn, step: int = MINUTE, max_gap: int = 90) -> Candles:
    count = draw(st.integers(1, 400))
    steps = draw(st.lists(st.integers(1, max_gap), min_size=count, max_size=count))
    start = draw(st.integers(0, 10_000_000 * MINUTE // step)) * step
    ts = start + np.cumsum(np.asarray(steps, dtype=np.int64)) * step
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(rng.normal(0, 0.01, count).cumsum())
    open_ = close * np.exp(rng.normal(0, 0.005, count))
    spread = rng.uniform(0, 0.01, count) * close
    return Candles(
        ts,
        open_,
        np.maximum(open_, close) + spread,
        np.minimum(open_, close) - spread,
        close,
        rng.gamma(2.0, 5.0, count),
    )


@settings(max_examples=60, deadline=None)
@given(candle_series(), st.sampled_from(["5m", "15m", "1h", "4h", "1d"]))
def test_resample_matches_pandas(candles: Candles, target: str) -> None:
    out = resample(candles, parse_timeframe("1m"), parse_timeframe(target))
    frame = candles.to_pandas()
    rule = {"5m": "5min", "15m": "15min", "1h": "1h", "4h": "4h", "1d": "1D"}[target]
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    expected = frame.resample(rule).agg(agg).dropna(subset=["open"])
    index = pd.DatetimeIndex(expected.index)
    assert out.timestamp.tolist() == index.as_unit("ms").asi8.tolist()
    for name in ("open", "high", "low", "close"):
        assert getattr(out, name).tolist() == expected[name].tolist()
    assert np.allclose(out.volume, expected["volume"].to_numpy(), rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(candle_series())
def test_gaps_account_for_every_missing_minute(candles: Candles) -> None:
    gaps = gaps_in(candles, parse_timeframe("1m"))
    span = (int(candles.timestamp[-1]) - int(candles.timestamp[0])) // MINUTE + 1
    assert sum(gap.missing for gap in gaps) == span - len(candles)
    present = set(candles.timestamp.tolist())
    for gap in gaps:
        assert gap.start - MINUTE in present and gap.end in present
        assert not present & set(range(gap.start, gap.end, MINUTE))


HOUR = 3_600_000


@settings(max_examples=60, deadline=None)
@given(candle_series(HOUR, 200), st.sampled_from(["1M", "3M", "12M"]))
def test_calendar_months_match_pandas(candles: Candles, target: str) -> None:
    """Hourly candles spanning years resample to calendar months, quarters and years
    exactly as pandas' month-start rules; complete buckets hold every hour."""
    out = resample(candles, parse_timeframe("1h"), parse_timeframe(target))
    rule = {"1M": "MS", "3M": "QS-JAN", "12M": "YS"}[target]
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    resampled = candles.to_pandas().resample(rule)
    expected = resampled.agg(agg).dropna(subset=["open"])
    assert out.timestamp.tolist() == pd.DatetimeIndex(expected.index).as_unit("ms").asi8.tolist()
    for name in ("open", "high", "low", "close"):
        assert getattr(out, name).tolist() == expected[name].tolist()
    complete = resample(candles, parse_timeframe("1h"), parse_timeframe(target), complete_only=True)
    counts = resampled["close"].count()
    starts = pd.DatetimeIndex(counts.index)
    hours = (starts.shift(1, freq=rule) - starts) // pd.Timedelta(hours=1)
    full = starts[counts.to_numpy() == hours.to_numpy()]
    assert complete.timestamp.tolist() == full.as_unit("ms").asi8.tolist()


@settings(max_examples=40, deadline=None)
@given(candle_series(86_400_000, 70))
def test_monthly_gaps_count_calendar_months(candles: Candles) -> None:
    monthly = resample(candles, parse_timeframe("1d"), parse_timeframe("1M"))
    month = parse_timeframe("1M")
    gaps = gaps_in(monthly, month)
    months = monthly.timestamp.astype("datetime64[ms]").astype("datetime64[M]").astype(int)
    assert sum(gap.missing for gap in gaps) == months[-1] - months[0] + 1 - len(monthly)
    for gap in gaps:
        assert pd.Timestamp(gap.start, unit="ms").day == 1
        assert gap.start not in set(monthly.timestamp.tolist())
