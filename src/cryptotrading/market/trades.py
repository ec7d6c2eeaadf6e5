"""Candles built from trades.

Accepted trades: ccxt unified trade dicts (``timestamp``, ``price``, ``amount``),
Freqtrade trade lists ``[timestamp, id, type, side, price, amount, cost]``, plain
``[timestamp, price, amount]`` rows, or a DataFrame / Arrow table with a time column
(``timestamp``/``date``/``datetime``/``time``), ``price`` and an amount column
(``amount``, ``quantity``, ``qty`` or ``size``) -- as read from JSON (plain or gzip),
CSV, Feather or Parquet files.

Each candle is the trades of one UTC bucket of the timeframe: first price, highest,
lowest, last price (trades ordered by timestamp, file order within a millisecond) and
the summed base amount. Buckets without trades have no candle. A bucket is built from
the trades given in one call only: the first and last buckets of a file that starts
or ends mid-bucket are partial, and a later import of trades of the same bucket
*replaces* that candle -- import overlapping trade files as one, or files that end on
bucket boundaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cryptotrading.errors import ValidationError
from cryptotrading.market.candles import Candles, Floats, Ints, timestamps_ms
from cryptotrading.market.formats import read_csv_table, read_file
from cryptotrading.market.timeframes import Timeframe
from cryptotrading.market.validation import outside_calendar
from cryptotrading.settings import DEFAULT_MAX_IMPORT_BYTES

_TIME_NAMES = ("timestamp", "date", "datetime", "time")
_AMOUNT_NAMES = ("amount", "quantity", "qty", "size")
_HINT = (
    "Pass ccxt trades ({'timestamp', 'price', 'amount', ...}), Freqtrade trade rows "
    "[timestamp, id, type, side, price, amount, cost], or columns timestamp, price, amount."
)


@dataclass(frozen=True)
class Trades:
    """Trades as columns, ordered by timestamp: epoch-ms times, prices, base amounts."""

    timestamp: Ints
    price: Floats
    amount: Floats

    def __len__(self) -> int:
        return len(self.timestamp)


def to_trades(data: Any) -> Trades:
    """Validate and order trades given in any accepted shape (see the module doc);
    the first bad trade is named in the error."""
    if isinstance(data, Trades):
        return data
    if isinstance(data, pa.Table | pa.RecordBatch):
        data = data.to_pandas()
    if isinstance(data, list | tuple):
        data = _rows_to_frame(list(data))
    if not isinstance(data, pd.DataFrame):
        raise ValidationError(f"cannot read trades from a {type(data).__name__}", hint=_HINT)
    return _from_frame(data)


def _rows_to_frame(rows: list[Any]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({"timestamp": [], "price": [], "amount": []})
    if isinstance(rows[0], dict):
        return pd.DataFrame.from_records(rows)
    width = len(rows[0]) if isinstance(rows[0], list | tuple) else 0
    positions = {7: (0, 4, 5), 3: (0, 1, 2)}.get(width)
    if positions is None or any(
        not isinstance(row, list | tuple) or len(row) != width for row in rows
    ):
        raise ValidationError(
            "trade rows must all have 7 values (Freqtrade) or all 3 (timestamp, price, "
            f"amount); the first has {width}",
            hint=_HINT,
        )
    return pd.DataFrame(
        {
            name: [row[i] for row in rows]
            for name, i in zip(("timestamp", "price", "amount"), positions, strict=True)
        }
    )


def _column(frame: pd.DataFrame, names: tuple[str, ...], what: str) -> Any:
    lower = {str(column).strip().lower(): column for column in frame.columns}
    found = next((lower[name] for name in names if name in lower), None)
    if found is None:
        raise ValidationError(
            f"no {what} column in the trades (have: {', '.join(map(str, frame.columns))})",
            hint=f"Name it one of: {', '.join(names)}.",
        )
    return frame[found]


def _numbers(column: Any, what: str) -> Floats:
    try:
        values = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    except (OverflowError, TypeError, ValueError):  # e.g. an integer beyond float64
        values = np.array([_float_or_nan(value) for value in column], dtype=np.float64)
    bad = np.flatnonzero(np.isnan(values) & column.notna().to_numpy())
    if len(bad):
        shown = repr(column.iloc[int(bad[0])])
        shown = shown if len(shown) <= 40 else shown[:20] + "..." + shown[-8:]
        raise ValidationError(
            f"trade {int(bad[0])}: {what} {shown} is not a number (or beyond float64)",
            hint=_HINT,
        )
    return np.ascontiguousarray(values)


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (OverflowError, TypeError, ValueError):
        return math.nan


def _from_frame(frame: pd.DataFrame) -> Trades:
    times = timestamps_ms(_column(frame, _TIME_NAMES, "time"))
    price = _numbers(_column(frame, ("price",), "price"), "price")
    amount = _numbers(_column(frame, _AMOUNT_NAMES, "amount"), "amount")
    problems = [
        (outside_calendar(times), "timestamp is before 1970 or not before 2100"),
        (~np.isfinite(price) | (price <= 0), "price is missing, not finite or not positive"),
        (~np.isfinite(amount) | (amount < 0), "amount is missing, not finite or negative"),
    ]
    first = [(int(np.flatnonzero(bad)[0]), text) for bad, text in problems if bad.any()]
    if first:
        row, text = min(first)
        raise ValidationError(
            f"trade {row} (timestamp {int(times[row])}): {text}; nothing was written",
            hint="Fix or drop that trade: times from 1970 to 2099 (UTC), prices positive, "
            "amounts not negative.",
        )
    order = np.argsort(times, kind="stable")
    return Trades(times[order], price[order], amount[order])


def trades_to_candles(trades: Trades, frame: Timeframe) -> Candles:
    """One candle per UTC bucket of *frame* that has trades (see the module doc)."""
    if len(trades) == 0:
        return Candles.empty()
    buckets = frame.opens(frame.slots(trades.timestamp))
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    ends = np.r_[starts[1:], len(buckets)]
    price = trades.price
    return Candles(
        timestamp=buckets[starts],
        open=price[starts],
        high=np.maximum.reduceat(price, starts),
        low=np.minimum.reduceat(price, starts),
        close=price[ends - 1],
        volume=np.add.reduceat(trades.amount, starts),
    )


def read_trades_file(
    path: Path, fmt: str | None = None, *, max_bytes: int = DEFAULT_MAX_IMPORT_BYTES
) -> Trades:
    """Read and validate a whole trades file (format detected from its content),
    reading at most *max_bytes* (see :func:`cryptotrading.market.formats.read_file`)."""
    return read_file(
        path,
        fmt,
        from_json=_from_json,
        from_table=to_trades,
        from_csv=lambda csv_path: to_trades(read_csv_table(csv_path)),
        what="trades",
        max_bytes=max_bytes,
    )


def _from_json(document: Any) -> Trades:
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        document = document["data"]
    return to_trades(document)
