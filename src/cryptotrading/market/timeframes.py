"""Timeframes (``1m``, ``5m``, ``1h``, ``1d``, ``1w`` ...) and their UTC grid.

A timeframe is a positive count and a unit: ``s`` seconds, ``m`` minutes, ``h`` hours,
``d`` days, ``w`` weeks (ccxt notation). Candles sit on a UTC grid: a candle's open
time is a multiple of the timeframe since the epoch, except weeks, which open on
Mondays 00:00 UTC (as on Binance). Calendar months (``1M``) are not supported: they
have no fixed length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptotrading.errors import ValidationError

_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PATTERN = re.compile(r"^([1-9][0-9]{0,4})([smhdw])$")
#: 1970-01-01 was a Thursday; weekly candles open on Mondays (1970-01-05).
_MONDAY_OFFSET_MS = 4 * 86_400_000


@dataclass(frozen=True, order=True)
class Timeframe:
    """A parsed timeframe: its length and grid offset in epoch milliseconds."""

    ms: int
    name: str
    offset_ms: int = 0

    def floor(self, timestamp_ms: int) -> int:
        """The open time of the candle containing *timestamp_ms*."""
        return (timestamp_ms - self.offset_ms) // self.ms * self.ms + self.offset_ms

    def on_grid(self, timestamp_ms: int) -> bool:
        return (timestamp_ms - self.offset_ms) % self.ms == 0

    def divides(self, coarser: Timeframe) -> bool:
        """True when candles of this timeframe tile candles of *coarser* exactly."""
        return (
            coarser.ms > self.ms
            and coarser.ms % self.ms == 0
            and (coarser.offset_ms - self.offset_ms) % self.ms == 0
        )


def parse_timeframe(name: str) -> Timeframe:
    """Parse ``"5m"``-style names; anything else raises :class:`ValidationError`."""
    match = _PATTERN.match(name.strip()) if isinstance(name, str) else None
    if match is None:
        hint = "Use a count and a unit s, m, h, d or w, e.g. 1m, 5m, 1h, 4h, 1d, 1w."
        if isinstance(name, str) and name.strip().endswith("M"):
            hint = "Calendar months (1M) are not supported; store 1d or 1w candles instead."
        raise ValidationError(f"unknown timeframe {name!r}", hint=hint)
    count, unit = int(match.group(1)), match.group(2)
    offset = _MONDAY_OFFSET_MS if unit == "w" else 0
    return Timeframe(count * _UNIT_MS[unit], f"{count}{unit}", offset)
