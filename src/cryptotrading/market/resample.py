"""Resampling candles to a coarser timeframe on UTC-aligned buckets.

OHLCV semantics: first open, highest high, lowest low, last close, summed volume.
A bucket is *incomplete* when some of its finer candles are missing (an exchange
outage, or the newest bucket still in progress). Incomplete buckets are kept by
default -- exactly what the exchange itself reports for such an hour -- and dropped
with ``complete_only=True``.
"""

from __future__ import annotations

import numpy as np

from cryptotrading.market.candles import Candles
from cryptotrading.market.timeframes import Timeframe


def resample(
    candles: Candles, source: Timeframe, target: Timeframe, *, complete_only: bool = False
) -> Candles:
    """Aggregate sorted *candles* of timeframe *source* into *target* buckets."""
    n = len(candles)
    if n == 0:
        return candles
    ts = candles.timestamp
    buckets = target.opens(target.slots(ts))
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    ends = np.r_[starts[1:], n]
    out = Candles(
        timestamp=buckets[starts],
        open=candles.open[starts],
        high=np.maximum.reduceat(candles.high, starts),
        low=np.minimum.reduceat(candles.low, starts),
        close=candles.close[ends - 1],
        volume=np.add.reduceat(candles.volume, starts),
    )
    if not complete_only:
        return out
    opens = out.timestamp
    expected = source.slots(target.opens(target.slots(opens) + 1)) - source.slots(opens)
    complete = (ends - starts) == expected
    return Candles(
        *(
            column[complete]
            for column in (out.timestamp, out.open, out.high, out.low, out.close, out.volume)
        )
    )
