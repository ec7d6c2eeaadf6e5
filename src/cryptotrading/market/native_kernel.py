"""The compiled drain loop of :mod:`cryptotrading.market.native_read` (numba).

Imported only by that module, after it has checked that the ``libsqlite3`` whose
addresses are registered here is the very library Python's ``sqlite3`` module uses.
The loop calls ``sqlite3_step`` / ``sqlite3_column_*`` as plain native calls and writes
straight into numpy columns, so no Python object is created per row. The functions
are bound by symbol name (``ExternalFunction``), which lets numba cache the compiled
code on disk (``cache=True``) instead of compiling it in every process.
"""

from __future__ import annotations

import ctypes
from typing import Any

import llvmlite.binding as llvm
from numba import njit, types

from cryptotrading.market.candles import Floats, Ints

SQLITE_ROW = 100

_SIGNATURES = {
    "sqlite3_step": types.int32(types.voidptr),
    "sqlite3_column_int64": types.int64(types.voidptr, types.int32),
    "sqlite3_column_double": types.float64(types.voidptr, types.int32),
}


def register(library: ctypes.CDLL) -> None:
    """Point the symbols the kernel calls at *library*'s functions."""
    for name in _SIGNATURES:
        address = ctypes.cast(getattr(library, name), ctypes.c_void_p).value
        assert address is not None
        llvm.add_symbol(name, address)


# Typed as Any: these are numba call targets, only meaningful inside compiled code.
_step: Any = types.ExternalFunction("sqlite3_step", _SIGNATURES["sqlite3_step"])
_int64: Any = types.ExternalFunction("sqlite3_column_int64", _SIGNATURES["sqlite3_column_int64"])
_double: Any = types.ExternalFunction("sqlite3_column_double", _SIGNATURES["sqlite3_column_double"])


def _drain_rows(
    stmt: Any,
    timestamp: Any,
    open_: Any,
    high: Any,
    low: Any,
    close: Any,
    volume: Any,
    start: int,
) -> tuple[int, int]:
    n = start
    capacity = timestamp.shape[0]
    while n < capacity:
        rc = _step(stmt)
        if rc != SQLITE_ROW:
            return n, rc
        timestamp[n] = _int64(stmt, 0)
        open_[n] = _double(stmt, 1)
        high[n] = _double(stmt, 2)
        low[n] = _double(stmt, 3)
        close[n] = _double(stmt, 4)
        volume[n] = _double(stmt, 5)
        n += 1
    return n, SQLITE_ROW


_compiled: Any = njit(cache=True, nogil=True)(_drain_rows)


def drain(statement: int, timestamp: Ints, values: list[Floats], start: int) -> tuple[int, int]:
    """Step *statement* (a ``sqlite3_stmt*``), filling the columns from row *start*
    until they are full or the statement stops; returns (rows filled, last result code).
    The GIL is released while it runs."""
    rows, rc = _compiled(statement, timestamp, *values, start)
    return int(rows), int(rc)
