"""Validation of candles before anything is written: the first bad row is named."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cryptotrading.common.clock import iso_ms
from cryptotrading.errors import ValidationError
from cryptotrading.market.candles import PRICE_COLUMNS, Candles
from cryptotrading.market.timeframes import Timeframe

MAX_NAME = 32
#: Candle and trade times must lie in [1970-01-01, 2100-01-01) UTC, epoch ms.
MIN_TIMESTAMP = 0
END_TIMESTAMP = 4_102_444_800_000


def outside_calendar(timestamps: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Which epoch-ms *timestamps* are before 1970 or not before 2100."""
    return (timestamps < MIN_TIMESTAMP) | (timestamps >= END_TIMESTAMP)


def check_names(symbol: str, exchange: str) -> None:
    """A symbol of 1 to 32 characters and an exchange id of at most 32, both without
    control characters, line breaks or surrounding blanks."""
    if not symbol or len(symbol) > MAX_NAME or _bad_name(symbol):
        raise ValidationError(
            f"invalid symbol {symbol!r}",
            hint=f"Give a symbol of 1 to {MAX_NAME} printable characters, without surrounding "
            "blanks, in ccxt notation, e.g. BTC/USDT.",
        )
    if len(exchange) > MAX_NAME:
        raise ValidationError(
            f"exchange name {exchange!r} is longer than {MAX_NAME} characters",
            hint="Use the ccxt exchange id, e.g. binance.",
        )
    if exchange and _bad_name(exchange):
        raise ValidationError(
            f"invalid exchange name {exchange!r}",
            hint="Use the ccxt exchange id (printable, no surrounding blanks), e.g. binance.",
        )


def _bad_name(name: str) -> bool:
    """Padded with blanks, or holding a character that does not print (newline, tab,
    NUL, escape, zero-width and bidi marks, non-ASCII spaces, line separators)."""
    return name != name.strip() or not name.isprintable()


def validate_candles(candles: Candles, timeframe: Timeframe) -> None:
    """Raise :class:`ValidationError` naming the first bad row, or return."""
    ts = candles.timestamp
    problems: list[tuple[int, str]] = []

    def first(mask: np.ndarray, describe: str) -> None:
        if mask.any():
            problems.append((int(np.argmax(mask)), describe))

    first(outside_calendar(ts), "timestamp is before 1970 or not before 2100")
    for name in (*PRICE_COLUMNS, "volume"):
        values = getattr(candles, name)
        first(~np.isfinite(values), f"{name} is NaN or infinite")
    for name in PRICE_COLUMNS:
        first(getattr(candles, name) <= 0, f"{name} is not a positive price")
    first(candles.volume < 0, "volume is negative")
    first(candles.high < candles.low, "high is below low")
    first(
        candles.high < np.maximum(candles.open, candles.close),
        "high is below open or close",
    )
    first(
        candles.low > np.minimum(candles.open, candles.close),
        "low is above open or close",
    )
    if len(ts) > 1:
        steps = np.diff(ts)
        first(np.r_[False, steps == 0], "duplicate timestamp (same as the previous row)")
        first(np.r_[False, steps < 0], "timestamp is earlier than the previous row (unsorted)")
    first(
        timeframe.off_grid(ts),
        f"timestamp is not on the {timeframe.name} grid",
    )
    if not problems:
        return
    row, describe = min(problems, key=lambda problem: problem[0])
    raise ValidationError(
        f"row {row} (timestamp {int(ts[row])} = {iso_ms(int(ts[row]))}): {describe}; "
        "nothing was written",
        hint=f"Fix or drop that row (candles must be sorted, unique, on the {timeframe.name} "
        "grid, from 1970 to 2099 UTC, with finite positive prices and "
        "low <= open, close <= high).",
    )
