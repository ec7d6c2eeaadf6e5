"""Large candle reads without a Python object per row.

The ``sqlite3`` module builds a tuple of six Python objects for every row it returns;
for 100k candles that is most of the read time. Here a separate read-only connection
is opened through the *same* ``libsqlite3`` that Python's ``sqlite3`` module uses, and
a numba-compiled loop (:mod:`cryptotrading.market.native_kernel`) steps the statement
and writes the values straight into numpy columns.

"The same library" matters: two SQLite copies in one process break SQLite's POSIX
lock bookkeeping (closing one copy's file descriptor drops the other's locks), which
is why bundled-SQLite readers (ADBC, apsw) are not used. The library is therefore
taken from the process's own memory map (Linux ``/proc/self/maps``) and used only when
exactly one ``libsqlite3`` is mapped and its version equals ``sqlite3.sqlite_version``.
Anywhere else (statically linked Python, macOS, numba missing, or
the setting ``native_reads = false``) :func:`available` is False and reads take the
``sqlite3`` path. Loading the compiled loop costs ~0.3 s once per process, so the
market store uses it only for reads of at least :data:`MIN_ROWS` candles.
"""

from __future__ import annotations

import ctypes
import sqlite3
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from cryptotrading.errors import StoreError
from cryptotrading.market.candles import VALUE_COLUMNS, Candles, Floats, Ints

#: Reads expected to return fewer candles take the ``sqlite3`` path.
MIN_ROWS = 20_000
#: The first allocation holds at most this many rows (the span of a sparse series can
#: promise far more than it holds); the columns double when full.
MAX_FIRST_ROWS = 1 << 18
_OPEN_READONLY = 0x00000001
_OPEN_NOMUTEX = 0x00008000
_SQLITE_OK, _SQLITE_DONE = 0, 101
_TRANSIENT = ctypes.c_void_p(-1)  # SQLITE_TRANSIENT: SQLite copies bound text
_VOIDP = ctypes.c_void_p


def _mapped_sqlite_libraries() -> set[str]:
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return set()
    paths = {line.split(None, 5)[-1] for line in lines if len(line.split(None, 5)) == 6}
    return {path for path in paths if Path(path).name.startswith("libsqlite3")}


@cache
def _library() -> ctypes.CDLL | None:
    """Python's own ``libsqlite3``, or None when it cannot be identified for sure."""
    mapped = _mapped_sqlite_libraries()
    if len(mapped) != 1:
        return None
    library = ctypes.CDLL(mapped.pop())
    library.sqlite3_libversion.restype = ctypes.c_char_p
    if library.sqlite3_libversion().decode() != sqlite3.sqlite_version:
        return None
    library.sqlite3_open_v2.argtypes = [
        ctypes.c_char_p,
        ctypes.POINTER(_VOIDP),
        ctypes.c_int,
        ctypes.c_char_p,
    ]
    library.sqlite3_prepare_v2.argtypes = [
        _VOIDP,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.POINTER(_VOIDP),
        _VOIDP,
    ]
    library.sqlite3_bind_text.argtypes = [
        _VOIDP,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        _VOIDP,
    ]
    library.sqlite3_bind_int64.argtypes = [_VOIDP, ctypes.c_int, ctypes.c_int64]
    library.sqlite3_busy_timeout.argtypes = [_VOIDP, ctypes.c_int]
    library.sqlite3_errmsg.argtypes = [_VOIDP]
    library.sqlite3_errmsg.restype = ctypes.c_char_p
    library.sqlite3_finalize.argtypes = [_VOIDP]
    library.sqlite3_close_v2.argtypes = [_VOIDP]
    return library


@cache
def _kernel() -> Any:
    """The compiled drain loop, bound to :func:`_library` (None without numba)."""
    library = _library()
    if library is None:
        return None
    try:
        from cryptotrading.market import native_kernel
    except ImportError:
        return None
    native_kernel.register(library)
    return native_kernel


def available() -> bool:
    """True when large reads can take the native path in this process."""
    return _library() is not None and _kernel() is not None


def read(
    path: str, sql: str, params: Sequence[str | int], *, busy_timeout_ms: int, expected: int
) -> Candles:
    """Run *sql* (selecting timestamp, open, high, low, close, volume) on a read-only
    connection to the SQLite file *path*; *expected* sizes the first allocation."""
    library, kernel = _library(), _kernel()
    assert library is not None and kernel is not None, "call available() first"
    db = _VOIDP()
    statement = _VOIDP()
    try:
        _check(
            library,
            db,
            library.sqlite3_open_v2(path.encode(), db, _OPEN_READONLY | _OPEN_NOMUTEX, None),
        )
        library.sqlite3_busy_timeout(db, busy_timeout_ms)
        _check(library, db, library.sqlite3_prepare_v2(db, sql.encode(), -1, statement, None))
        for position, value in enumerate(params, start=1):
            if isinstance(value, str):
                rc = library.sqlite3_bind_text(statement, position, value.encode(), -1, _TRANSIENT)
            else:
                rc = library.sqlite3_bind_int64(statement, position, value)
            _check(library, db, rc)
        return _drain(library, kernel, db, statement, min(max(expected, 1024), MAX_FIRST_ROWS))
    finally:
        library.sqlite3_finalize(statement)
        library.sqlite3_close_v2(db)


def _drain(library: ctypes.CDLL, kernel: Any, db: Any, statement: Any, capacity: int) -> Candles:
    timestamp: Ints = np.empty(capacity, np.int64)
    values: list[Floats] = [np.empty(capacity) for _ in VALUE_COLUMNS]
    rows = 0
    while True:
        rows, rc = kernel.drain(statement.value, timestamp, values, rows)
        if rc == _SQLITE_DONE:
            break
        if rc != kernel.SQLITE_ROW:
            _check(library, db, rc)
        timestamp = np.resize(timestamp, 2 * len(timestamp))
        values = [np.resize(column, 2 * len(column)) for column in values]
    # Give back a much too large first guess (a sparse range) instead of keeping it.
    if rows < len(timestamp) // 2:
        return Candles(timestamp[:rows].copy(), *(column[:rows].copy() for column in values))
    return Candles(timestamp[:rows], *(column[:rows] for column in values))


def _check(library: ctypes.CDLL, db: Any, rc: int) -> None:
    if rc not in (_SQLITE_OK, _SQLITE_DONE):
        message = (library.sqlite3_errmsg(db) or b"unknown error").decode(errors="replace")
        raise StoreError(
            f"market store read failed: {message} (SQLite result code {rc})",
            hint="Run `cryptotrading db check`; set CRYPTOTRADING_NATIVE_READS=false to read "
            "through the sqlite3 module instead.",
        )
