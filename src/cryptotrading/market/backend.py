"""The one interface of a candle database: SQLite (:mod:`.sqlite_io`) and PostgreSQL
(:mod:`.postgres_io`) each implement it, and :class:`~.store.MarketStore` picks one
when it is built -- no backend branching anywhere else."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol

from cryptotrading.market.candles import Candles


class BatchMark(NamedTuple):
    """Which job a write belongs to, and its batch number within the job."""

    job_id: str
    number: int


def series_filters(
    placeholder: str, frequency: str | None, exchange: str | None, *, table: str = ""
) -> tuple[str, list[Any]]:
    """The optional ``AND frequency = ?``/``AND exchange = ?`` clauses (with the driver's
    *placeholder*, columns prefixed by *table*) for the values given, and their values."""
    given = [(name, value) for name, value in (("frequency", frequency), ("exchange", exchange))]
    kept = [(name, value) for name, value in given if value is not None]
    clauses = "".join(f" AND {table}{name} = {placeholder}" for name, _ in kept)
    return clauses, [value for _, value in kept]


class CandleBackend(Protocol):
    """Transactions, writes that skip unchanged rows, and the reads of ``time_series``."""

    def connection(self, *, write: bool) -> AbstractContextManager[Any]:
        """A raw driver connection; with *write*, inside one transaction that commits
        when the block ends and rolls back on any error."""
        ...

    def write(
        self,
        symbol: str,
        frequency: str,
        exchange: str,
        candles: Candles,
        ingested_at: int,
        batch: BatchMark | None,
    ) -> int:
        """Store *candles* (validated, sorted, unique) in its own transaction(s): rows
        equal value for value to the stored ones are skipped, new and changed ones
        written, *batch* recorded with them. Returns the rows written."""
        ...

    def read(
        self,
        conn: Any,
        symbol: str,
        frequency: str,
        exchange: str | None,
        start: int | None,
        end: int | None,
    ) -> Candles:
        """Candles in ``[start, end)`` by time (every exchange when *exchange* is None)."""
        ...

    def latest(
        self, conn: Any, symbols: Sequence[str], frequency: str | None, exchange: str | None
    ) -> list[tuple[Any, ...]]:
        """The newest row (symbol, frequency, exchange, timestamp, o, h, l, c, v) per symbol."""
        ...

    def frequencies(self, conn: Any, symbol: str) -> list[str]:
        """Frequencies stored for *symbol*."""
        ...

    def exchanges(self, conn: Any, symbol: str, frequency: str) -> list[str]:
        """Exchanges stored for one symbol and frequency, sorted."""
        ...

    def series(self, conn: Any) -> list[tuple[Any, ...]]:
        """(symbol, frequency, exchange, rows, first, last) of every stored series."""
        ...

    def partitions(self, conn: Any) -> list[str]:
        """Names of the table's physical partitions (none on SQLite)."""
        ...

    def batch_totals(self, conn: Any, job_id: str) -> tuple[int, int]:
        """(batches, candles) committed for *job_id*."""
        ...
