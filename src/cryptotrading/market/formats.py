"""Candle files: format detection, reading and writing.

Formats: CSV (with a header naming ``timestamp``/``date``/``datetime`` and
``open,high,low,close,volume``, or headerless ``time,o,h,l,c,v``), ccxt/Freqtrade
JSON (a list of ``[ts_ms, o, h, l, c, v]``, plain or gzip-compressed), Feather
(Arrow IPC) and Parquet. The format is detected from the file's first bytes, so
the extension does not matter.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.market.candles import COLUMNS, VALUE_COLUMNS, Candles, to_candles

T = TypeVar("T")
FORMATS = ("csv", "json", "json.gz", "feather", "parquet")
EXPORT_FORMATS = ("csv", "parquet")


def detect_format(path: Path) -> str:
    """``csv``, ``json``, ``json.gz``, ``feather`` or ``parquet``, from the magic bytes."""
    if not path.is_file():
        raise NotFoundError(f"no such file: {path}", hint="Check the path of the file to import.")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"\x1f\x8b"):
        return "json.gz"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith((b"ARROW1", b"FEA1")):
        return "feather"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"[", b"{")):
        return "json"
    return "csv"


def read_candles_file(path: Path, fmt: str | None = None) -> Candles:
    """Read a whole candle file into :class:`Candles` (not yet validated)."""
    return read_file(path, fmt, from_json=_from_json, from_table=to_candles, from_csv=_from_csv)


def read_file(
    path: Path,
    fmt: str | None,
    *,
    from_json: Callable[[Any], T],
    from_table: Callable[[pa.Table], T],
    from_csv: Callable[[Path], T],
) -> T:
    """Read *path* in *fmt* (detected when None) with the converter of that format;
    unreadable content becomes a :class:`ValidationError` naming file and format."""
    fmt = fmt or detect_format(path)
    try:
        if fmt in ("json", "json.gz"):
            with _open_binary(path, compressed=fmt == "json.gz") as handle:
                return from_json(json.load(handle))
        if fmt == "parquet":
            return from_table(pq.read_table(path))
        if fmt == "feather":
            return from_table(feather.read_table(path))
        if fmt == "csv":
            return from_csv(path)
    except (OSError, ValueError, EOFError) as exc:
        raise ValidationError(
            f"cannot read {path.name} as {fmt}: {exc}",
            hint="Check that the file is complete and in one of: " + ", ".join(FORMATS) + ".",
        ) from None
    raise ValidationError(
        f"unknown file format {fmt!r}", hint="Choose one of: " + ", ".join(FORMATS) + "."
    )


def _open_binary(path: Path, *, compressed: bool) -> BinaryIO:
    return cast(BinaryIO, gzip.open(path, "rb")) if compressed else path.open("rb")


def _from_json(document: Any) -> Candles:
    if isinstance(document, dict):
        if "data" in document and isinstance(document["data"], list):
            document = document["data"]
        else:
            raise ValidationError(
                "JSON candles must be a list of [timestamp, open, high, low, close, volume]",
                hint="Use the ccxt/Freqtrade layout: [[1606780800000, 19695.87, ...], ...].",
            )
    if document and isinstance(document[0], dict):
        return to_candles(pd.DataFrame.from_records(document))
    return to_candles(document)


def _from_csv(path: Path) -> Candles:
    first = pd.read_csv(path, header=None, nrows=1, dtype=str)
    names = {str(value).strip().lower() for value in first.iloc[0]} if len(first) else set()
    if set(VALUE_COLUMNS) <= names:
        return to_candles(pd.read_csv(path))
    frame = pd.read_csv(path, header=None)
    if frame.shape[1] != 6:
        raise ValidationError(
            f"{path.name}: a CSV without header must have 6 columns, found {frame.shape[1]}",
            hint="Add a header timestamp,open,high,low,close,volume.",
        )
    frame.columns = list(COLUMNS)
    return to_candles(frame)


def write_candles_file(candles: Candles, path: Path, fmt: str | None = None) -> str:
    """Write candles as CSV or Parquet (chosen by *fmt* or the file extension)."""
    fmt = fmt or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv")
    if fmt == "parquet":
        pq.write_table(candles.to_arrow(), path, row_group_size=100_000)
    elif fmt == "csv":
        candles.to_pandas().to_csv(path, index=False, columns=list(COLUMNS))
    else:
        raise ValidationError(
            f"cannot export to {fmt!r}", hint="Choose one of: " + ", ".join(EXPORT_FORMATS) + "."
        )
    return fmt
