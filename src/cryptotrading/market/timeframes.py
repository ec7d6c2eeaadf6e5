"""Timeframes (``1m``, ``5m``, ``1h``, ``1d``, ``1w``, ``1M`` ...) and their UTC grid.

A timeframe is a positive count and a unit (ccxt notation): ``s`` seconds, ``m``
minutes, ``h`` hours, ``d`` days, ``w`` weeks, ``M`` calendar months. Candles sit on a
UTC grid: a candle's open time is a multiple of the timeframe since the epoch, except
weeks, which open on Mondays 00:00 UTC (as on Binance), and months, which open on the
first day of a month 00:00 UTC (``3M``: January, April, July, October; the count must
divide 12). A month has no fixed length: :attr:`Timeframe.ms` is then ccxt's nominal
30 days, used only for ordering and estimates; the grid functions
(:meth:`Timeframe.slots`, :meth:`Timeframe.opens`) are exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cryptotrading.errors import ValidationError

_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DAY_MS = 86_400_000
#: ccxt's nominal month (``ccxt.Exchange.parse_timeframe("1M")``).
_MONTH_MS = 30 * _DAY_MS
_PATTERN = re.compile(r"^([1-9][0-9]{0,4})([smhdwM])$")
#: 1970-01-01 was a Thursday; weekly candles open on Mondays (1970-01-05).
_MONDAY_OFFSET_MS = 4 * 86_400_000

Stamps = npt.NDArray[np.int64]


@dataclass(frozen=True, order=True)
class Timeframe:
    """A parsed timeframe: its (nominal) length, grid offset and, for calendar
    timeframes, its length in months."""

    ms: int
    name: str
    offset_ms: int = 0
    months: int = 0

    def slots(self, timestamps: npt.ArrayLike) -> Stamps:
        """Index of the candle containing each timestamp, counted on the grid."""
        ts = np.asarray(timestamps, dtype=np.int64)
        if self.months:
            month = ts.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)
            return month // self.months
        return (ts - self.offset_ms) // self.ms

    def opens(self, slots: npt.ArrayLike) -> Stamps:
        """Open time (epoch ms) of each grid slot."""
        index = np.asarray(slots, dtype=np.int64)
        if self.months:
            month = (index * self.months).astype("datetime64[M]")
            return month.astype("datetime64[ms]").astype(np.int64)
        return index * self.ms + self.offset_ms

    def floor(self, timestamp_ms: int) -> int:
        """The open time of the candle containing *timestamp_ms*."""
        return int(self.opens(self.slots(timestamp_ms)))

    def next_open(self, timestamp_ms: int) -> int:
        """The open time of the candle after the one containing *timestamp_ms*."""
        return int(self.opens(self.slots(timestamp_ms) + 1))

    def ceil(self, timestamp_ms: int) -> int:
        """*timestamp_ms* when it is on the grid, else the next open time."""
        return timestamp_ms if self.on_grid(timestamp_ms) else self.next_open(timestamp_ms)

    def on_grid(self, timestamp_ms: int) -> bool:
        return self.floor(timestamp_ms) == timestamp_ms

    def off_grid(self, timestamps: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Element-wise: the timestamp is not a candle open time."""
        ts = np.asarray(timestamps, dtype=np.int64)
        result: npt.NDArray[np.bool_] = self.opens(self.slots(ts)) != ts
        return result

    def divides(self, coarser: Timeframe) -> bool:
        """True when candles of this timeframe tile candles of *coarser* exactly."""
        if coarser.months:
            if self.months:
                return coarser.months > self.months and coarser.months % self.months == 0
            return self.offset_ms == 0 and _DAY_MS % self.ms == 0
        return (
            not self.months
            and coarser.ms > self.ms
            and coarser.ms % self.ms == 0
            and (coarser.offset_ms - self.offset_ms) % self.ms == 0
        )


def parse_timeframe(name: Any) -> Timeframe:
    """Parse ``"5m"``-style names; anything else raises :class:`ValidationError`."""
    match = _PATTERN.match(name.strip()) if isinstance(name, str) else None
    if match is None:
        raise ValidationError(
            f"unknown timeframe {name!r}",
            hint="Use a count and a unit s, m, h, d, w or M (calendar months), "
            "e.g. 1m, 5m, 1h, 4h, 1d, 1w, 1M.",
        )
    count, unit = int(match.group(1)), match.group(2)
    if unit == "M":
        if 12 % count:
            raise ValidationError(
                f"unknown timeframe {name!r}: months must divide a year",
                hint="Use 1M, 2M, 3M, 4M, 6M or 12M.",
            )
        return Timeframe(count * _MONTH_MS, f"{count}M", 0, count)
    offset = _MONDAY_OFFSET_MS if unit == "w" else 0
    return Timeframe(count * _UNIT_MS[unit], f"{count}{unit}", offset)
