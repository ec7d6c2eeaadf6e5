"""Candle files: format detection, reading and writing.

Formats: CSV (with a header naming ``timestamp``/``date``/``datetime`` and
``open,high,low,close,volume``, or headerless ``time,o,h,l,c,v``), ccxt/Freqtrade
JSON (a list of ``[ts_ms, o, h, l, c, v]``, plain or gzip-compressed), Feather
(Arrow IPC) and Parquet. The format is detected from the file's first bytes, so
the extension does not matter.

Reading is bounded and total: the source must be a regular file (not a directory,
device or FIFO); at most ``max_bytes`` (the ``max_import_bytes`` setting) are read --
counted after decompression for gzip and as decoded columns for Parquet and Feather,
streamed so that a small gzip bomb is stopped at the cap without being expanded; a
header naming a column twice is refused; and whatever the content (bytes that are
not text, numbers beyond float64, JSON nested thousands deep, a truncated gzip) the
result is the data or a :class:`ValidationError` naming the file.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.market.candles import COLUMNS, VALUE_COLUMNS, Candles, to_candles
from cryptotrading.outputs import file_kind, write_output
from cryptotrading.settings import DEFAULT_MAX_IMPORT_BYTES

T = TypeVar("T")
FORMATS = ("csv", "json", "json.gz", "feather", "parquet")
EXPORT_FORMATS = ("csv", "parquet")
EXPORT_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_CHUNK = 1 << 20
_BATCH_ROWS = 65_536
_BLANK = b"\xef\xbb\xbf \t\r\n"
#: Everything a hostile file can make a parser raise (RecursionError: deep JSON;
#: OverflowError: integers beyond float64; zlib.error/EOFError: damaged gzip).
_READ_ERRORS = (
    OSError,
    ValueError,
    TypeError,
    EOFError,
    OverflowError,
    RecursionError,
    NotImplementedError,
    zlib.error,
    pa.ArrowException,
)


def check_source(path: Path) -> int:
    """The size of *path*, a regular file; :class:`NotFoundError` when it does not
    exist, :class:`ValidationError` when it is a directory, device or FIFO or
    cannot be examined."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise NotFoundError(
            f"no such file: {path}", hint="Check the path of the file to import."
        ) from None
    except (OSError, ValueError) as exc:  # permission, too long, a loop, a NUL byte
        raise ValidationError(
            f"cannot open {path}: {_describe(exc)}", hint="Check the path of the file to import."
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise ValidationError(
            f"{path} is {file_kind(info.st_mode)}, not a regular file",
            hint="Import a regular file (copy the data into a file first).",
        )
    return info.st_size


def detect_format(path: Path) -> str:
    """``csv``, ``json``, ``json.gz``, ``feather`` or ``parquet``, from the magic bytes."""
    check_source(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise ValidationError(
            f"cannot read {path}: {_describe(exc)}", hint="Check the file's permissions."
        ) from None
    if head.startswith(b"\x1f\x8b"):
        return "json.gz"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith((b"ARROW1", b"FEA1")):
        return "feather"
    if head.lstrip(_BLANK).startswith((b"[", b"{")):
        return "json"
    return "csv"


def read_candles_file(
    path: Path, fmt: str | None = None, *, max_bytes: int = DEFAULT_MAX_IMPORT_BYTES
) -> Candles:
    """Read a whole candle file into :class:`Candles` (not yet validated)."""
    return read_file(
        path,
        fmt,
        from_json=_from_json,
        from_table=to_candles,
        from_csv=_from_csv,
        max_bytes=max_bytes,
    )


def read_file(
    path: Path,
    fmt: str | None,
    *,
    from_json: Callable[[Any], T],
    from_table: Callable[[pa.Table], T],
    from_csv: Callable[[Path], T],
    what: str = "candles",
    max_bytes: int = DEFAULT_MAX_IMPORT_BYTES,
) -> T:
    """Read *path* in *fmt* (detected when None) with the converter of that format,
    within *max_bytes*; unreadable content becomes a :class:`ValidationError` naming
    file and format, an empty file ``no <what> in FILE``."""
    if fmt is not None and fmt not in FORMATS:
        raise ValidationError(
            f"unknown file format {fmt!r}", hint="Choose one of: " + ", ".join(FORMATS) + "."
        )
    size = check_source(path)
    fmt = fmt or detect_format(path)
    try:
        if fmt in ("json", "json.gz"):
            data = _read_bytes(path, compressed=fmt == "json.gz", limit=max_bytes)
            if not data.strip(_BLANK):
                raise no_data(path, what)
            return from_json(json.loads(data))
        if fmt == "parquet":
            return from_table(_unique_columns(_read_parquet(path, max_bytes), path))
        if fmt == "feather":
            return from_table(_unique_columns(_read_feather(path, size, max_bytes), path))
        _check_size(path, size, max_bytes)
        return from_csv(path)
    except pd.errors.EmptyDataError:
        raise no_data(path, what) from None
    except RecursionError:
        raise ValidationError(
            f"cannot read {path.name} as {fmt}: nested too deeply",
            hint="Candles and trades are flat lists of rows; check that this is the right file.",
        ) from None
    except _READ_ERRORS as exc:
        raise ValidationError(
            f"cannot read {path.name} as {fmt}: {_describe(exc)}",
            hint="Check that the file is complete and in one of: " + ", ".join(FORMATS) + ".",
        ) from None


def no_data(path: Path, what: str = "candles") -> ValidationError:
    """The error of a file without a single data row (empty, ``[]``, header only)."""
    return ValidationError(
        f"no {what} in {path}",
        hint="The file has no data rows (it is empty, an empty list or a header only); "
        "check that it is the right file. Nothing was written.",
    )


def _describe(exc: BaseException) -> str:
    """The exception's message, shortened and with control characters escaped."""
    text = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or ""
    text = text if len(text) <= 200 else text[:200] + "..."
    return text.encode("unicode_escape").decode("ascii") or type(exc).__name__


def _too_large(path: Path, limit: int, what: str) -> ValidationError:
    return ValidationError(
        f"{path.name} {what} more than {limit:,} bytes (max_import_bytes); nothing was read "
        "beyond that",
        hint="Split the file, or raise CRYPTOTRADING_MAX_IMPORT_BYTES if the machine has "
        "the memory for it.",
    )


def _check_size(path: Path, size: int, limit: int) -> None:
    if size > limit:
        raise _too_large(path, limit, "is")


def _read_bytes(path: Path, *, compressed: bool, limit: int) -> bytearray:
    """The (decompressed) content, streamed in chunks and stopped past *limit*."""
    buffer = bytearray()
    with gzip.open(path, "rb") if compressed else path.open("rb") as handle:
        while chunk := handle.read(min(_CHUNK, limit + 1 - len(buffer))):
            buffer += chunk
            if len(buffer) > limit:
                raise _too_large(path, limit, "expands to" if compressed else "is")
    return buffer


def _read_parquet(path: Path, limit: int) -> pa.Table:
    with pq.ParquetFile(path) as parquet:
        meta = parquet.metadata
        declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if declared > limit:
            raise _too_large(path, limit, "decodes to")
        batches, total = [], 0
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
            total += batch.nbytes
            if total > limit:
                raise _too_large(path, limit, "decodes to")
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=parquet.schema_arrow)


def _read_feather(path: Path, size: int, limit: int) -> pa.Table:
    with path.open("rb") as handle:
        version_2 = handle.read(6) == b"ARROW1"
    if not version_2:  # Feather V1: uncompressed, its size is the file's
        _check_size(path, size, limit)
        return feather.read_table(path)
    with pa.OSFile(str(path)) as source:
        reader = pa.ipc.open_file(source)
        batches, total = [], 0
        for index in range(reader.num_record_batches):
            batch = reader.get_batch(index)
            total += batch.nbytes
            if total > limit:
                raise _too_large(path, limit, "decodes to")
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=reader.schema)


def _unique_columns(table: pa.Table, path: Path) -> pa.Table:
    check_unique_columns(table.column_names, path)
    return table


def check_unique_columns(names: Sequence[Any], path: Path) -> None:
    """Refuse a header naming a column twice (compared trimmed and lower-cased):
    which of the two was meant is unknowable."""
    seen: set[str] = set()
    for name in names:
        if name is None or (isinstance(name, float) and name != name):
            continue  # an unnamed column
        key = str(name).strip().lower()
        if key in seen and key:
            raise ValidationError(
                f"{path.name}: column {key!r} appears more than once in the header",
                hint="Keep one column of each name (timestamp, open, high, low, close, volume).",
            )
        seen.add(key)


def read_csv_header(path: Path) -> list[str]:
    """The cells of the first CSV row, as text (empty cells as '')."""
    first = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    return [str(value) for value in first.iloc[0]] if len(first) else []


def read_csv_table(path: Path) -> pd.DataFrame:
    """A CSV with a header row, refused when the header names a column twice."""
    check_unique_columns(read_csv_header(path), path)
    return pd.read_csv(path)


def _from_json(document: Any) -> Candles:
    if isinstance(document, dict):
        if "data" in document and isinstance(document["data"], list):
            document = document["data"]
        else:
            raise ValidationError(
                "JSON candles must be a list of [timestamp, open, high, low, close, volume]",
                hint="Use the ccxt/Freqtrade layout: [[1606780800000, 19695.87, ...], ...].",
            )
    if not isinstance(document, list):
        raise ValidationError(
            f"JSON candles must be a list, not {type(document).__name__}",
            hint="Use the ccxt/Freqtrade layout: [[1606780800000, 19695.87, ...], ...].",
        )
    if document and all(isinstance(row, dict) for row in document):
        return to_candles(pd.DataFrame.from_records(document))
    return to_candles(document)


def _from_csv(path: Path) -> Candles:
    names = [name.strip().lower() for name in read_csv_header(path)]
    if set(VALUE_COLUMNS) <= set(names):
        check_unique_columns(names, path)
        return to_candles(pd.read_csv(path))
    frame = pd.read_csv(path, header=None)
    if frame.shape[1] != 6:
        raise ValidationError(
            f"{path.name}: a CSV without header must have 6 columns, found {frame.shape[1]}",
            hint="Add a header timestamp,open,high,low,close,volume.",
        )
    frame.columns = list(COLUMNS)
    return to_candles(frame)


def export_format(path: Path, fmt: str | None = None) -> str:
    """The format an export to *path* writes: *fmt*, else the one its extension names
    (``.csv``, ``.parquet``, ``.pq``); anything else is a :class:`ValidationError`."""
    choices = " or ".join(EXPORT_FORMATS)
    if fmt is not None:
        if fmt not in EXPORT_FORMATS:
            raise ValidationError(f"cannot export to {fmt!r}", hint=f"Choose {choices}.")
        return fmt
    found = EXPORT_SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise ValidationError(
            f"cannot tell the export format of {path.name!r} from its extension",
            hint=f"Name the file .csv or .parquet, or pass --format {choices}.",
        )
    return found


def write_candles_file(candles: Candles, path: Path, fmt: str | None = None) -> str:
    """Write candles as CSV or Parquet (*fmt*, or the file extension) whole or not at
    all (:func:`cryptotrading.outputs.write_output`); returns the format written."""
    fmt = export_format(path, fmt)

    def write(target: Path) -> None:
        if fmt == "parquet":
            pq.write_table(candles.to_arrow(), target, row_group_size=100_000)
        else:
            candles.to_pandas().to_csv(target, index=False, columns=list(COLUMNS))

    write_output(path, write)
    return fmt
