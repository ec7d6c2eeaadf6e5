"""Columnar candles: the one in-memory shape every input is converted to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from cryptotrading.errors import ValidationError

PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")
COLUMNS = ("timestamp", *VALUE_COLUMNS)
#: Numpy record layout of a candle (``as_="numpy"`` returns arrays of it).
CANDLE_DTYPE = np.dtype([("timestamp", "<i8")] + [(name, "<f8") for name in VALUE_COLUMNS])
_TIME_NAMES = ("timestamp", "date", "datetime", "time", "open_time")

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Candles:
    """Candles as columns: epoch-ms int64 open times and float64 OHLCV."""

    timestamp: Ints
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Floats

    def __len__(self) -> int:
        return len(self.timestamp)

    @classmethod
    def empty(cls) -> Candles:
        return cls.from_records(np.empty(0, CANDLE_DTYPE))

    @classmethod
    def from_records(cls, records: npt.NDArray[Any]) -> Candles:
        return cls(*(np.ascontiguousarray(records[name]) for name in COLUMNS))

    def slice(self, start: int, stop: int) -> Candles:
        return Candles(*(getattr(self, name)[start:stop] for name in COLUMNS))

    def to_records(self) -> npt.NDArray[Any]:
        out = np.empty(len(self), CANDLE_DTYPE)
        for name in COLUMNS:
            out[name] = getattr(self, name)
        return out

    def to_pandas(self) -> pd.DataFrame:
        """A DataFrame with an int64 ``timestamp`` column and a UTC DatetimeIndex."""
        index = pd.DatetimeIndex(
            pd.to_datetime(self.timestamp, unit="ms", utc=True), name="datetime"
        )
        return pd.DataFrame({name: getattr(self, name) for name in COLUMNS}, index=index)

    def to_arrow(self) -> pa.Table:
        return pa.table({name: getattr(self, name) for name in COLUMNS})

    def convert(self, as_: str) -> Any:
        """This data as ``"pandas"``, ``"arrow"`` or ``"numpy"`` (structured array)."""
        if as_ == "pandas":
            return self.to_pandas()
        if as_ == "arrow":
            return self.to_arrow()
        if as_ == "numpy":
            return self.to_records()
        raise ValidationError(
            f"unknown output kind {as_!r}", hint='Use as_="pandas", "arrow" or "numpy".'
        )


def unstored(stored: Candles, candles: Candles) -> tuple[Candles, bool]:
    """The rows of *candles* that are new or differ from *stored* (the stored candles
    of the same series over at least the same range, sorted by time), compared value
    for value (numerically: ``0.0 == -0.0``), and whether all of them are new keys."""
    if len(stored) == 0:
        return candles, True
    ts = candles.timestamp
    where = np.searchsorted(stored.timestamp, ts)
    at = np.where(where < len(stored), where, 0)
    known = (where < len(stored)) & (stored.timestamp[at] == ts)
    same = known.copy()
    for name in VALUE_COLUMNS:
        same &= getattr(stored, name)[at] == getattr(candles, name)
    keep = ~same
    if keep.all():
        return candles, not bool(known.any())
    fresh = Candles(*(getattr(candles, name)[keep] for name in COLUMNS))
    return fresh, not bool((known & keep).any())


def without_negative_zero(candles: Candles) -> Candles:
    """*candles* with ``-0.0`` stored as ``0.0`` (adding ``0.0`` maps -0.0 to 0.0 and
    leaves every other value as it is), so equal values are also equal bits."""
    return Candles(
        candles.timestamp, *(np.add(getattr(candles, name), 0.0) for name in VALUE_COLUMNS)
    )


def to_candles(data: Any) -> Candles:
    """Convert a DataFrame, Arrow table, numpy (structured or n x 6) array or ccxt rows
    ``[[ts, o, h, l, c, v], ...]`` into :class:`Candles` (values are not validated)."""
    if isinstance(data, Candles):
        return data
    if isinstance(data, pd.DataFrame):
        return _from_frame(data)
    if isinstance(data, pa.Table | pa.RecordBatch):
        return _from_frame(data.to_pandas())
    if isinstance(data, np.ndarray) and data.dtype.names:
        return _from_frame(pd.DataFrame({name: data[name] for name in data.dtype.names}))
    return _from_rows(data)


def _from_rows(data: Any) -> Candles:
    if isinstance(data, list | tuple) and len(data) == 0:
        return Candles.empty()
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(
            f"cannot read candles: {exc}",
            hint="Pass a DataFrame, an Arrow table, a numpy array or ccxt rows "
            "[[timestamp_ms, open, high, low, close, volume], ...].",
        ) from None
    if array.ndim != 2 or array.shape[1] != 6:
        raise ValidationError(
            f"candle rows must have 6 values each, got an array of shape {array.shape}",
            hint="Each row is [timestamp_ms, open, high, low, close, volume] (ccxt OHLCV).",
        )
    return Candles(
        _timestamps(array[:, 0]), *(np.ascontiguousarray(array[:, i]) for i in range(1, 6))
    )


def _from_frame(frame: pd.DataFrame) -> Candles:
    lower = {str(column).strip().lower(): column for column in frame.columns}
    missing = [name for name in VALUE_COLUMNS if name not in lower]
    if missing:
        raise ValidationError(
            f"missing column(s) {', '.join(missing)} (have: {', '.join(map(str, frame.columns))})",
            hint="Provide columns timestamp (or date), open, high, low, close, volume.",
        )
    time_column = next((lower[name] for name in _TIME_NAMES if name in lower), None)
    if time_column is not None:
        times = timestamps_ms(frame[time_column])
    elif isinstance(frame.index, pd.DatetimeIndex):
        times = timestamps_ms(pd.Series(frame.index))
    else:
        raise ValidationError(
            "no timestamp column found",
            hint="Name the time column timestamp, date or datetime, or use a DatetimeIndex.",
        )
    values = []
    for name in VALUE_COLUMNS:
        try:
            values.append(np.ascontiguousarray(frame[lower[name]].to_numpy(np.float64)))
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"column {name!r} is not numeric: {exc}",
                hint="Prices and volume must be numbers.",
            ) from None
    return Candles(times, *values)


def timestamps_ms(values: Any) -> Ints:
    """Epoch milliseconds from numbers (ms, or s when every value < 1e11) or datetimes
    (naive values are taken as UTC)."""
    series = pd.Series(values)
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series):
        array = series.to_numpy(np.float64)
        if len(array) and np.nanmax(np.abs(array)) < 1e11:
            array = array * 1000.0
        return _timestamps(array)
    try:
        parsed = pd.to_datetime(series, utc=True, format="mixed")
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"cannot parse timestamps: {exc}",
            hint="Use epoch milliseconds or ISO dates like 2021-01-01 00:00:00 (UTC).",
        ) from None
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise ValidationError(
            f"row {row}: missing timestamp", hint="Every candle needs an open time."
        )
    return np.ascontiguousarray(parsed.dt.as_unit("ms").astype("int64").to_numpy(np.int64))


def _timestamps(array: Floats) -> Ints:
    bad = ~np.isfinite(array) | (array != np.round(array))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValidationError(
            f"row {row}: timestamp {array[row]!r} is not a whole number of milliseconds",
            hint="Timestamps are candle open times in epoch milliseconds (UTC).",
        )
    huge = np.abs(array) >= 2.0**63  # would wrap around in int64
    if huge.any():
        row = int(np.flatnonzero(huge)[0])
        raise ValidationError(
            f"row {row}: timestamp {array[row]!r} is outside 1970..2099",
            hint="Timestamps are candle open times in epoch milliseconds (UTC).",
        )
    return np.ascontiguousarray(array.astype(np.int64))
