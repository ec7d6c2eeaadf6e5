"""Is the replica equal to its sources? ``replicate verify``, ``replicate resync`` and the
cheap check that ``health`` runs.

How a table is compared
-----------------------
Rows are read on both sides through the SQLAlchemy table (the models' types), so a
SQLite source and a PostgreSQL replica -- or the reverse, or PostgreSQL's own logical
replica -- compare alike. Each row becomes a canonical text (datetimes in UTC, decimals
without trailing zeros, JSON with sorted keys and numbers as exact decimal text, floats
exactly, bytes as bytes), serialised by pickle and hashed to 64 bits with BLAKE2b.

The primary key is split into *group* columns (text: compared by equality only) and
*range* columns (integers: paged by range). Equality and integer order are the same on
every backend and collation, so both sides cut the same chunks: the source is read in
pages of ``chunk_rows`` rows in range order, and each page closes the chunk
``(last key of the previous page, last key of this page]`` that the replica is read over
(the last chunk is open-ended, so stray replica rows beyond the source's last key count
too). A chunk's digest is the sum of its row hashes modulo 2^64 -- independent of the
order rows arrive in -- with its row count. Only when the two sides' digests or counts
differ is the chunk narrowed to the keys that are missing from the replica, extra in it
or changed, reported as the range from the first to the last of them. A table without
integer key columns is paged over its whole key, ordered with ``COLLATE "C"`` on
PostgreSQL (the byte order SQLite uses).

Memory stays bounded: one source chunk and one page of replica rows at a time, and at
most :data:`MAX_KEYS` differing keys kept per table (counts and ranges stay complete).

Repair (:func:`resync`) touches only the differing ranges: per range, in ONE replica
transaction, the replica rows of the range that the source lacks are deleted and the
source's rows of the range are upserted, every range read from one source snapshot;
the replica's foreign-key checks are off as for replication
(:func:`cryptotrading.ops.replica_apply.replica_transaction`). The table is verified
again afterwards.
"""

from __future__ import annotations

import io
import pickle
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from hashlib import blake2b
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Float,
    LargeBinary,
    Numeric,
    Table,
    and_,
    delete,
    func,
    select,
    true,
    tuple_,
    type_coerce,
)
from sqlalchemy.types import NullType

from cryptotrading import migrations
from cryptotrading.common.views import AsDict, decimal_text, jsonable
from cryptotrading.db.engine import READ_ONLY
from cryptotrading.db.session import translate_errors
from cryptotrading.errors import (
    ConfigurationError,
    NotFoundError,
    SchemaVersionError,
    StoreError,
    ValidationError,
)
from cryptotrading.models import lineage_tables
from cryptotrading.ops import replica_apply, replication
from cryptotrading.ops.replicated import LINEAGES, replicated_tables
from cryptotrading.stores import Store, Stores

#: Source rows per chunk (and replica rows per page).
DEFAULT_CHUNK = 5_000
#: Differing keys kept per table (the counts and ranges are always complete).
MAX_KEYS = 1_000
#: Differing keys shown per range.
SAMPLE_KEYS = 20
#: Rows per table the cheap check of ``health`` compares (newest keys + one random chunk).
DEFAULT_QUICK_ROWS = 1_000
#: Groups (e.g. candle series) the cheap check samples per table.
QUICK_GROUPS = 8
#: Longest table name accepted from the command line (longer names are refused unread).
MAX_NAME = 200

_MASK = (1 << 64) - 1


# -- results ---------------------------------------------------------------------------


@dataclass
class KeyRange(AsDict):
    """Keys of one chunk that differ: from the first to the last differing key."""

    first: dict[str, Any]
    last: dict[str, Any]
    #: In the source, not in the replica.
    missing: int = 0
    #: In the replica, not in the source.
    extra: int = 0
    #: In both, with other values.
    changed: int = 0
    #: Up to :data:`SAMPLE_KEYS` of the differing keys.
    keys: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.missing + self.extra + self.changed


@dataclass
class TableCheck(AsDict):
    """Source and replica of one table compared."""

    table: str
    ok: bool = True
    source_rows: int = 0
    replica_rows: int = 0
    #: Order-independent digest of every row (hex); equal digests, equal tables.
    source_digest: str = ""
    replica_digest: str = ""
    chunks: int = 0
    differing_chunks: int = 0
    missing: int = 0
    extra: int = 0
    changed: int = 0
    ranges: list[KeyRange] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def differing_rows(self) -> int:
        return self.missing + self.extra + self.changed


@dataclass
class VerifyReport(AsDict):
    """``replicate verify``: every replicated table (or the ones asked for) compared."""

    ok: bool
    replica: str
    sources: dict[str, str]
    tables: list[TableCheck]
    rows_compared: int = 0
    seconds: float = 0.0

    @property
    def differing(self) -> list[TableCheck]:
        return [table for table in self.tables if not table.ok]


@dataclass
class QuickTable(AsDict):
    """The cheap check of one table: row counts and a sampled slice."""

    table: str
    ok: bool
    source_rows: int
    replica_rows: int
    sampled_rows: int
    ranges: list[KeyRange] = field(default_factory=list)


@dataclass
class QuickCheck(AsDict):
    """``health``'s cheap replica check: counts plus the newest keys and a random chunk
    of every table (drift in other rows is found by ``replicate verify``)."""

    ok: bool
    replica: str
    tables: list[QuickTable]
    seconds: float = 0.0

    @property
    def differing(self) -> list[QuickTable]:
        return [table for table in self.tables if not table.ok]


@dataclass
class TableResync(AsDict):
    """What ``replicate resync`` did to one table."""

    table: str
    ranges: int = 0
    #: Differing rows found before the repair (missing + extra + changed).
    rows_fixed: int = 0
    rows_deleted: int = 0
    rows_written: int = 0
    ok: bool = True
    #: Rows still differing when verified again (0 unless the source changed meanwhile).
    still_differing: int = 0
    seconds: float = 0.0


@dataclass
class ResyncReport(AsDict):
    ok: bool
    replica: str
    tables: list[TableResync]
    seconds: float = 0.0


# -- tables and their keys ------------------------------------------------------------


@dataclass(frozen=True)
class TableRef:
    """A replicated table and its lineage."""

    lineage: str
    table: Table

    @property
    def name(self) -> str:
        return f"{self.lineage}.{self.table.name}"


def replicated() -> list[TableRef]:
    """Every replicated table, parents before children, application then market."""
    return [
        TableRef(lineage, table) for lineage in LINEAGES for table in replicated_tables(lineage)
    ]


def resolve_table(name: str) -> TableRef:
    """The replicated table called *name* (``users`` or ``app.users``).

    An unknown name is a :class:`NotFoundError`; a table of ours that is not replicated
    (bookkeeping such as the change log) a :class:`ValidationError`.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(
            "no table named", hint="Name a replicated table, e.g. `time_series` or `app.users`."
        )
    shown = repr(name[:60])
    shown = shown if len(shown) <= 70 and len(name) <= 60 else shown[:66] + "...'"
    if len(name) <= MAX_NAME:
        wanted = name.strip()
        for ref in replicated():
            if wanted in (ref.table.name, ref.name):
                return ref
        for lineage in LINEAGES:
            for table in lineage_tables(lineage):
                if wanted in (table.name, f"{lineage}.{table.name}"):
                    raise ValidationError(
                        f"table {shown} is not replicated, so the replica has nothing to "
                        "verify or repair",
                        hint="List the replicated tables with `cryptotrading replicate status`.",
                    )
    names = sorted(ref.table.name for ref in replicated())
    raise NotFoundError(
        f"no replicated table {shown}",
        hint=f"Choose one of: {', '.join(names)} (optionally as app.NAME / market.NAME).",
    )


@dataclass(frozen=True)
class _Layout:
    """How a table's primary key is cut into chunks."""

    table: Table
    groups: tuple[Column[Any], ...]
    ranges: tuple[Column[Any], ...]
    #: Range columns that are text, ordered with COLLATE "C" on PostgreSQL.
    collate: bool
    key_index: tuple[int, ...]
    range_index: tuple[int, ...]
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]
    #: The range key (a tuple) of a row.
    key_of: Callable[[Sequence[Any]], tuple[Any, ...]]

    @property
    def key_names(self) -> list[str]:
        return [c.name for c in self.table.primary_key.columns]


def _python_type(column: Column[Any]) -> type | None:
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return None
    return kind if isinstance(kind, type) else None


def _is_integer(column: Column[Any]) -> bool:
    kind = _python_type(column)
    return kind is int


def layout(table: Table) -> _Layout:
    pk = list(table.primary_key.columns)
    ranges = tuple(c for c in pk if _is_integer(c))
    groups = tuple(c for c in pk if not _is_integer(c))
    collate = not ranges
    if collate:  # no integer column: page over the whole key
        ranges, groups = tuple(pk), ()
    columns = list(table.columns)
    converters = []
    for index, column in enumerate(columns):
        converter = _converter(column)
        if converter is not None:
            converters.append((index, converter))
    range_index = tuple(columns.index(c) for c in ranges)
    return _Layout(
        table,
        groups,
        ranges,
        collate,
        tuple(columns.index(c) for c in pk),
        range_index,
        tuple(converters),
        _key_getter(range_index),
    )


def _key_getter(indexes: tuple[int, ...]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    if len(indexes) == 1:
        (index,) = indexes
        return lambda row: (row[index],)
    return itemgetter(*indexes)  # a tuple for two or more


# -- canonical values and row hashes ----------------------------------------------------


def _canonical_datetime(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return "dt:" + value.astimezone(UTC).isoformat()
    return value


def _canonical_decimal(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite():
        return "dec:" + (decimal_text(value) or "")
    return value


def _json_number(value: int | float) -> str:
    if (isinstance(value, float) and value != value) or value in (float("inf"), float("-inf")):
        return repr(value)
    return decimal_text(Decimal(repr(value) if isinstance(value, float) else value)) or "0"


def canonical_json(value: Any) -> str:
    """JSON text that two backends agree on: sorted keys, numbers as exact decimal text
    (``1``, ``1.0`` and ``1e0`` alike, as PostgreSQL's JSONB holds them)."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else ("true" if value else "false")
    if isinstance(value, int | float):
        return _json_number(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(canonical_json(k) + ":" + canonical_json(v) for k, v in items) + "}"
    return repr(value)


def _canonical_json_value(value: Any) -> Any:
    return "json:" + canonical_json(value)


def _canonical_bytes(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview | bytearray) else value


def _canonical_value(value: Any) -> Any:
    """Any value by its Python type (columns of types without a fixed one)."""
    if isinstance(value, datetime):
        return _canonical_datetime(value)
    if isinstance(value, Decimal):
        return _canonical_decimal(value)
    if isinstance(value, dict | list):
        return _canonical_json_value(value)
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return value


def _converter(column: Column[Any]) -> Callable[[Any], Any] | None:
    """How a column's values become canonical (None: they already are)."""
    kind: Any = getattr(column.type, "impl_instance", column.type)  # a TypeDecorator's base
    if isinstance(kind, JSON):
        return _canonical_json_value  # scalars too: 1 and 1.0 are one JSON number
    if isinstance(kind, DateTime):
        return _canonical_datetime
    if isinstance(kind, Float):
        return None  # floats compare exactly as they are
    if isinstance(kind, Numeric):
        return _canonical_decimal
    if isinstance(kind, LargeBinary):
        return _canonical_bytes
    if _python_type(column) in (int, str, bool, float):
        return None
    return _canonical_value


def _canonical(shape: _Layout, row: Sequence[Any]) -> tuple[Any, ...]:
    if not shape.converters:
        return tuple(row)
    values = list(row)
    for index, convert in shape.converters:
        values[index] = convert(values[index])
    return tuple(values)


def row_hashes(rows: Iterable[tuple[Any, ...]]) -> list[int]:
    """64-bit hashes (BLAKE2b) of canonical rows, each serialised by pickle: exact for
    every canonical value (floats as their 8 bytes, ``bool`` apart from ``int``) and,
    with the memo off ("fast" mode), independent of which values share an object."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.fast = True  # no memo: the bytes depend on the values only
    seek, truncate, dump, value = buffer.seek, buffer.truncate, pickler.dump, buffer.getvalue
    hashes: list[int] = []
    append = hashes.append
    for row in rows:  # the hot loop of a verify: ~1 us a row
        seek(0)
        truncate()
        dump(row)
        append(int.from_bytes(blake2b(value(), digest_size=8).digest(), "big"))
    return hashes


def row_hash(values: tuple[Any, ...]) -> int:
    """64-bit hash of one canonical row (see :func:`row_hashes`)."""
    return row_hashes([values])[0]


# -- reading --------------------------------------------------------------------------


def _order(connection: Connection, shape: _Layout, column: Column[Any]) -> ColumnElement[Any]:
    if shape.collate and connection.dialect.name == "postgresql" and _python_type(column) is str:
        return column.collate("C")
    return column


def _bound(
    connection: Connection, shape: _Layout, key: tuple[Any, ...], op: str
) -> ColumnElement[bool]:
    """``range columns <op> key`` (row-value comparison for several columns)."""
    columns = [_order(connection, shape, c) for c in shape.ranges]
    left: Any = columns[0] if len(columns) == 1 else tuple_(*columns)
    right: Any = key[0] if len(columns) == 1 else tuple_(*key)
    if op == ">":
        return left > right  # type: ignore[no-any-return]
    if op == ">=":
        return left >= right  # type: ignore[no-any-return]
    return left <= right  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Span:
    """Rows of one group between two range keys: ``(after, upto]`` (or ``[after, upto]``)."""

    group: tuple[Any, ...]
    after: tuple[Any, ...] | None = None
    upto: tuple[Any, ...] | None = None
    inclusive: bool = False


def _where(connection: Connection, shape: _Layout, span: _Span) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        c == v for c, v in zip(shape.groups, span.group, strict=True)
    ]
    if span.after is not None:
        conditions.append(_bound(connection, shape, span.after, ">=" if span.inclusive else ">"))
    if span.upto is not None:
        conditions.append(_bound(connection, shape, span.upto, "<="))
    return conditions


Rows = list[tuple[tuple[Any, ...], tuple[Any, ...]]]
"""Rows as (range key as stored, canonical row)."""


def _fetch(
    connection: Connection,
    shape: _Layout,
    span: _Span,
    *,
    limit: int | None = None,
    after: tuple[Any, ...] | None = None,
    descending: bool = False,
) -> Rows:
    """Rows of *span* in range order (after the range key *after*)."""
    conditions = _where(connection, shape, span)
    if after is not None:
        conditions.append(_bound(connection, shape, after, ">"))
    order = [_order(connection, shape, c) for c in shape.ranges]
    query = (
        select(*shape.table.columns)
        .where(and_(true(), *conditions))
        .order_by(*[o.desc() for o in order] if descending else order)
        .limit(limit)
    )
    try:
        rows = connection.execute(query).all()
    except (ValueError, TypeError, ArithmeticError):
        # A value the model's type cannot read (e.g. text edited into a datetime column
        # of a SQLite file): read the page raw; such rows then differ and are reported.
        raw = select(*[type_coerce(c, NullType()).label(c.name) for c in shape.table.columns])
        rows = connection.execute(
            raw.where(and_(true(), *conditions))
            .order_by(*[o.desc() for o in order] if descending else order)
            .limit(limit)
        ).all()
        return [(shape.key_of(row), _readable(shape, connection, row)) for row in rows]
    key_of = shape.key_of
    if not shape.converters:
        return [(key_of(row), tuple(row)) for row in rows]
    return [(key_of(row), _canonical(shape, row)) for row in rows]


def _readable(shape: _Layout, connection: Connection, row: Sequence[Any]) -> tuple[Any, ...]:
    """A raw row with each value read by its column's type where possible."""
    values = []
    for column, value in zip(shape.table.columns, row, strict=True):
        dialect = connection.dialect
        processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
        try:
            values.append(processor(value) if processor is not None else value)
        except (ValueError, TypeError, ArithmeticError):
            values.append(("unreadable", repr(value)))
    return _canonical(shape, values)


def _groups(shape: _Layout, *connections: Connection) -> list[tuple[Any, ...]]:
    """The values of the group columns found on either side (``[()]``: no groups)."""
    if not shape.groups:
        return [()]
    found: set[tuple[Any, ...]] = set()
    for connection in connections:
        found.update(tuple(row) for row in connection.execute(select(*shape.groups).distinct()))
    return sorted(found, key=lambda group: tuple(map(repr, group)))


# -- comparing chunks -----------------------------------------------------------------


@dataclass
class _Tally:
    """Running figures of one table on one side."""

    rows: int = 0
    digest: int = 0

    def add(self, hashes: Sequence[int]) -> None:
        self.rows += len(hashes)
        self.digest = (self.digest + sum(hashes)) & _MASK


@dataclass
class _Diff:
    missing: list[tuple[Any, ...]] = field(default_factory=list)
    extra: list[tuple[Any, ...]] = field(default_factory=list)
    changed: list[tuple[Any, ...]] = field(default_factory=list)


def _replica_pages(
    connection: Connection, shape: _Layout, span: _Span, page: int
) -> Iterator[Rows]:
    last: tuple[Any, ...] | None = None
    while True:
        rows = _fetch(connection, shape, span, limit=page, after=last)
        if rows:
            yield rows
        if len(rows) < page:
            return
        last = rows[-1][0]


def _compare_span(
    replica: Connection,
    shape: _Layout,
    span: _Span,
    source_rows: Rows,
    page: int,
    tallies: tuple[_Tally, _Tally],
) -> _Diff | None:
    """Compare the source's rows of *span* (given) with the replica's (read in pages).
    None when digests and counts agree; otherwise the differing keys (range keys)."""
    source_hashes = row_hashes(row for _key, row in source_rows)
    tallies[0].add(source_hashes)
    kept: list[tuple[tuple[Any, ...], int]] | None = []
    count = digest = 0
    for rows in _replica_pages(replica, shape, span, page):
        hashes = row_hashes(row for _key, row in rows)
        tallies[1].add(hashes)
        count += len(hashes)
        digest = (digest + sum(hashes)) & _MASK
        if kept is not None:
            kept.extend(zip((key for key, _row in rows), hashes, strict=True))
            if len(kept) > 4 * max(page, len(source_rows)):
                kept = None  # too many to hold: narrowed by reading again
    if count == len(source_hashes) and digest == sum(source_hashes) & _MASK:
        return None
    wanted = {key: h for (key, _row), h in zip(source_rows, source_hashes, strict=True)}
    diff = _Diff()

    def narrow(pairs: Iterable[tuple[tuple[Any, ...], int]]) -> None:
        for key, h in pairs:
            expected = wanted.pop(key, None)
            if expected is None:
                diff.extra.append(key)
            elif expected != h:
                diff.changed.append(key)

    if kept is not None:
        narrow(kept)
    else:
        for rows in _replica_pages(replica, shape, span, page):
            narrow(zip((key for key, _row in rows), row_hashes(r for _k, r in rows), strict=True))
    diff.missing.extend(wanted)
    return diff


def _key_view(shape: _Layout, group: tuple[Any, ...], key: tuple[Any, ...]) -> dict[str, Any]:
    values = dict(zip([c.name for c in shape.groups], group, strict=True))
    values.update(zip([c.name for c in shape.ranges], key, strict=True))
    return {name: jsonable(values[name]) for name in shape.key_names}


def _differing(diff: _Diff) -> list[tuple[Any, ...]]:
    return sorted([*diff.missing, *diff.extra, *diff.changed], key=_sort_key)


def _key_range(shape: _Layout, group: tuple[Any, ...], diff: _Diff, kept: int) -> KeyRange:
    keys = _differing(diff)
    return KeyRange(
        _key_view(shape, group, keys[0]),
        _key_view(shape, group, keys[-1]),
        len(diff.missing),
        len(diff.extra),
        len(diff.changed),
        [_key_view(shape, group, key) for key in keys[: min(SAMPLE_KEYS, kept)]],
    )


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """Integers first, in order (as both backends order them), then anything else."""
    return tuple((0, v, "") if isinstance(v, int) else (1, 0, repr(v)) for v in key)


def _check_table(
    ref: TableRef,
    source: Connection,
    replica: Connection,
    chunk_rows: int,
    keys_left: int = MAX_KEYS,
) -> tuple[TableCheck, list[_Span]]:
    """Compare one table completely; the check and the spans that differ."""
    started = time.perf_counter()
    shape = layout(ref.table)
    check = TableCheck(ref.name)
    tallies = (_Tally(), _Tally())
    spans: list[_Span] = []
    for group in _groups(shape, source, replica):
        after: tuple[Any, ...] | None = None
        while True:
            rows = _fetch(source, shape, _Span(group), limit=chunk_rows, after=after)
            upto = rows[-1][0] if len(rows) == chunk_rows else None
            span = _Span(group, after, upto)
            check.chunks += 1
            diff = _compare_span(replica, shape, span, rows, chunk_rows, tallies)
            if diff is not None:
                key_range = _key_range(shape, group, diff, keys_left)
                keys_left = max(0, keys_left - key_range.rows)
                check.ranges.append(key_range)
                check.differing_chunks += 1
                check.missing += key_range.missing
                check.extra += key_range.extra
                check.changed += key_range.changed
                keys = _differing(diff)
                spans.append(_Span(group, keys[0], keys[-1], inclusive=True))
            if upto is None:
                break
            after = upto
    check.source_rows, check.replica_rows = tallies[0].rows, tallies[1].rows
    check.source_digest = f"{tallies[0].digest:016x}"
    check.replica_digest = f"{tallies[1].digest:016x}"
    check.ok = not check.ranges
    check.seconds = round(time.perf_counter() - started, 3)
    return check, spans


# -- stores and snapshots --------------------------------------------------------------


def _replica(stores: Stores) -> Store:
    replica = replication.replica_store(stores)
    for lineage in LINEAGES:
        source = stores.primary_for(lineage)
        if source.url == replica.url:
            raise ConfigurationError(
                f"the replica store is the {source.name!r} store itself ({replica.display_url})",
                hint="Point CRYPTOTRADING_REPLICA_URL at another database.",
            )
    return replica


def _check_versions(stores: Stores, replica: Store, lineages: set[str]) -> None:
    for lineage in sorted(lineages):
        for store in (stores.primary_for(lineage), replica):
            found = migrations.current(stores.engine(store), lineage)
            if found != migrations.head(lineage):
                raise SchemaVersionError(
                    f"store {store.name!r} is at schema version {found or 'none'} of lineage "
                    f"{lineage!r}; comparing needs {migrations.head(lineage)} on both sides",
                    hint="Run `cryptotrading db upgrade` on the store (the replica first).",
                )


@contextmanager
def _snapshot(engine: Engine, where: str) -> Iterator[Connection]:
    """One read transaction: every table is read at the same instant."""
    with translate_errors(where), engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:
            connection = connection.execution_options(**{READ_ONLY: True})
        with connection.begin():
            yield connection


def _refs(names: Sequence[str] | None) -> list[TableRef]:
    if not names:
        return replicated()
    wanted = {resolve_table(name).name for name in names}
    return [ref for ref in replicated() if ref.name in wanted]


def _check_chunk(chunk_rows: int) -> None:
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValidationError(
            f"chunk size must be a positive number of rows, not {chunk_rows!r}",
            hint="Pass --chunk-rows 1 or more (default 5000).",
        )


def verify(
    stores: Stores,
    tables: Sequence[str] | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK,
    progress: Callable[[str, int, int], None] | None = None,
) -> VerifyReport:
    """Compare every replicated table (or *tables*) of the sources with the replica.

    *progress* is called as ``progress(table, done, total)`` after each table.
    """
    _check_chunk(chunk_rows)
    refs = _refs(tables)
    replica = _replica(stores)
    _check_versions(stores, replica, {ref.lineage for ref in refs})
    started = time.perf_counter()
    checks: list[TableCheck] = []
    sources = {lineage: stores.primary_for(lineage).display_url for lineage in LINEAGES}
    with _snapshot(stores.engine(replica), f"replica {replica.name}") as replica_connection:
        for lineage in LINEAGES:
            mine = [ref for ref in refs if ref.lineage == lineage]
            if not mine:
                continue
            source = stores.primary_for(lineage)
            with _snapshot(stores.engine(source), source.name) as source_connection:
                for ref in mine:
                    with translate_errors(f"verify {ref.name}"):
                        check, _spans = _check_table(
                            ref, source_connection, replica_connection, chunk_rows
                        )
                    checks.append(check)
                    if progress is not None:
                        progress(ref.name, len(checks), len(refs))
    return VerifyReport(
        ok=all(check.ok for check in checks),
        replica=replica.display_url,
        sources=sources,
        tables=checks,
        rows_compared=sum(check.source_rows + check.replica_rows for check in checks),
        seconds=round(time.perf_counter() - started, 3),
    )


# -- the cheap check -------------------------------------------------------------------


def _count(connection: Connection, shape: _Layout) -> int:
    """Rows of the table (every group)."""
    conditions = _where(connection, _ungrouped(shape), _Span(()))
    return int(
        connection.execute(
            select(func.count()).select_from(shape.table).where(and_(true(), *conditions))
        ).scalar_one()
    )


def _quick_table(
    ref: TableRef, source: Connection, replica: Connection, rows: int, rng: random.Random
) -> QuickTable:
    shape = layout(ref.table)
    tallies = (_Tally(), _Tally())
    result = QuickTable(
        ref.name,
        True,
        _count(source, shape),
        _count(replica, shape),
        0,
    )
    groups = _groups(shape, source, replica)
    if len(groups) > QUICK_GROUPS:
        groups = sorted(rng.sample(groups, QUICK_GROUPS), key=lambda g: tuple(map(repr, g)))
    per_group = max(1, rows // max(1, len(groups)))
    spans: list[tuple[_Span, Rows]] = []
    for group in groups:
        # The newest keys of the group (where replication lands) ...
        tail = _fetch(source, shape, _Span(group), limit=per_group, descending=True)
        tail.reverse()
        start = tail[0][0] if tail else None
        spans.append((_Span(group, start, None, inclusive=start is not None), tail))
    if groups and len(shape.ranges) == 1:
        # ... and one chunk from a random place (any older edit is found in time).
        group = rng.choice(groups)
        first = shape.ranges[0]
        low, high = source.execute(
            select(func.min(first), func.max(first)).where(
                and_(true(), *_where(source, shape, _Span(group)))
            )
        ).one()
        if isinstance(low, int) and isinstance(high, int):
            start_key = (rng.randint(low, high),)
            chunk = _fetch(
                source, shape, _Span(group, start_key, None, inclusive=True),
                limit=rows,
            )  # fmt: skip
            tail_start = next((s.after for s, _ in spans if s.group == group), None)
            chunk = [row for row in chunk if tail_start is None or row[0] < tail_start]
            if chunk:
                spans.append((_Span(group, start_key, chunk[-1][0], inclusive=True), chunk))
    for span, source_rows in spans:
        diff = _compare_span(replica, shape, span, source_rows, max(rows, 1), tallies)
        if diff is not None:
            result.ranges.append(_key_range(shape, span.group, diff, SAMPLE_KEYS))
    result.sampled_rows = tallies[0].rows
    result.ok = not result.ranges and result.source_rows == result.replica_rows
    return result


def _ungrouped(shape: _Layout) -> _Layout:
    """The layout without its group columns (conditions over every group)."""
    return _Layout(
        shape.table, (), shape.ranges, shape.collate, shape.key_index, shape.range_index,
        shape.converters, shape.key_of,
    )  # fmt: skip


def quick_check(
    stores: Stores,
    tables: Sequence[str] | None = None,
    *,
    rows: int = DEFAULT_QUICK_ROWS,
    seed: int | None = None,
) -> QuickCheck:
    """The cheap form of :func:`verify` for ``health``: per table the row counts, the
    digest of the newest *rows* keys and of one random chunk of *rows* keys."""
    _check_chunk(rows)
    refs = _refs(tables)
    replica = _replica(stores)
    _check_versions(stores, replica, {ref.lineage for ref in refs})
    rng = random.Random(seed)
    started = time.perf_counter()
    results: list[QuickTable] = []
    with _snapshot(stores.engine(replica), f"replica {replica.name}") as replica_connection:
        for lineage in LINEAGES:
            mine = [ref for ref in refs if ref.lineage == lineage]
            if not mine:
                continue
            source = stores.primary_for(lineage)
            with _snapshot(stores.engine(source), source.name) as source_connection:
                for ref in mine:
                    with translate_errors(f"check {ref.name}"):
                        results.append(
                            _quick_table(ref, source_connection, replica_connection, rows, rng)
                        )
    return QuickCheck(
        ok=all(result.ok for result in results),
        replica=replica.display_url,
        tables=results,
        seconds=round(time.perf_counter() - started, 3),
    )


# -- repair ----------------------------------------------------------------------------


def _source_rows(connection: Connection, shape: _Layout, span: _Span) -> list[dict[str, Any]]:
    query = (
        select(shape.table)
        .where(and_(true(), *_where(connection, shape, span)))
        .order_by(*[_order(connection, shape, c) for c in shape.ranges])
    )
    try:
        return [dict(row) for row in connection.execute(query).mappings()]
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise StoreError(
            f"a row of {shape.table.name} in the source cannot be read: {exc}",
            hint="Run `cryptotrading db check` on the source store and repair the row first; "
            "the replica was not changed for this range.",
        ) from exc


def _repair_span(
    connection: Connection, shape: _Layout, span: _Span, rows: list[dict[str, Any]]
) -> tuple[int, int]:
    """In the replica: delete the rows of *span* the source lacks, upsert *rows* (the
    source's rows of the span). Returns (rows deleted, rows written)."""
    table = shape.table
    keep = {tuple(row[c.name] for c in shape.ranges) for row in rows}
    pk = list(table.primary_key.columns)
    ranged = [pk.index(c) for c in shape.ranges]
    stale: list[tuple[Any, ...]] = []
    last: tuple[Any, ...] | None = None
    while True:  # the replica's keys of the span, a page at a time
        conditions = _where(connection, shape, span)
        if last is not None:
            conditions.append(_bound(connection, shape, last, ">"))
        keys = [
            tuple(row)
            for row in connection.execute(
                select(*pk)
                .where(and_(true(), *conditions))
                .order_by(*[_order(connection, shape, c) for c in shape.ranges])
                .limit(DEFAULT_CHUNK)
            )
        ]
        stale += [key for key in keys if tuple(key[i] for i in ranged) not in keep]
        if len(keys) < DEFAULT_CHUNK:
            break
        last = tuple(keys[-1][i] for i in ranged)
    deleted = 0
    for start in range(0, len(stale), replica_apply.KEY_CHUNK):
        batch = stale[start : start + replica_apply.KEY_CHUNK]
        deleted += connection.execute(delete(table).where(tuple_(*pk).in_(batch))).rowcount or 0
    # The upsert also moves a unique key the source gave another row (its old holder
    # in the replica is deleted).
    return deleted, replica_apply.upsert(connection, table, rows)


def _resync_table(stores: Stores, replica: Store, ref: TableRef, chunk_rows: int) -> TableResync:
    started = time.perf_counter()
    result = TableResync(ref.name)
    source = stores.primary_for(ref.lineage)
    replica_engine = stores.engine(replica)

    def compare(source_connection: Connection) -> tuple[TableCheck, list[_Span]]:
        with (
            _snapshot(replica_engine, f"replica {replica.name}") as replica_connection,
            translate_errors(f"verify {ref.name}"),
        ):
            return _check_table(ref, source_connection, replica_connection, chunk_rows)

    with _snapshot(stores.engine(source), source.name) as source_connection:
        before, spans = compare(source_connection)
        result.rows_fixed = before.differing_rows
        result.ranges = len(spans)
        shape = layout(ref.table)
        for span in spans:
            with translate_errors(f"source {source.name}"):
                rows = _source_rows(source_connection, shape, span)
            with replica_apply.replica_transaction(replica_engine) as connection:
                deleted, written = _repair_span(connection, shape, span, rows)
            result.rows_deleted += deleted
            result.rows_written += written
    with _snapshot(stores.engine(source), source.name) as source_connection:
        after, _ = compare(source_connection)
    result.ok = after.ok
    result.still_differing = after.differing_rows
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def resync(
    stores: Stores,
    table: str | None = None,
    *,
    all_tables: bool = False,
    chunk_rows: int = DEFAULT_CHUNK,
    progress: Callable[[str, int, int], None] | None = None,
) -> ResyncReport:
    """Repair *table* (or, with *all_tables*, every replicated table) from its source:
    only the key ranges that differ, then verify the table again."""
    _check_chunk(chunk_rows)
    if (table is None) == (not all_tables):
        raise ValidationError(
            "name one table to resync, or pass --all (not both)"
            if table is not None
            else "no table to resync",
            hint="Run `cryptotrading replicate resync TABLE`, or `replicate resync --all` for "
            "every table `replicate verify` reports.",
        )
    refs = replicated() if all_tables else [resolve_table(table or "")]
    replica = _replica(stores)
    _check_versions(stores, replica, {ref.lineage for ref in refs})
    started = time.perf_counter()
    results = []
    for ref in refs:  # parents before children
        results.append(_resync_table(stores, replica, ref, chunk_rows))
        if progress is not None:
            progress(ref.name, len(results), len(refs))
    return ResyncReport(
        ok=all(result.ok for result in results),
        replica=replica.display_url,
        tables=results if not all_tables else [r for r in results if r.rows_fixed or not r.ok],
        seconds=round(time.perf_counter() - started, 3),
    )


__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_QUICK_ROWS",
    "KeyRange",
    "QuickCheck",
    "QuickTable",
    "ResyncReport",
    "TableCheck",
    "TableRef",
    "TableResync",
    "VerifyReport",
    "canonical_json",
    "quick_check",
    "replicated",
    "resolve_table",
    "resync",
    "verify",
]
