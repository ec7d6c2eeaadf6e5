"""Continuous, incremental replication of the application and market stores into the
replica store (``rex.db`` in layout ``three``, or ``CRYPTOTRADING_REPLICA_URL``).

How it stays correct:

* **Incremental.** Each table has a change column -- ``updated_at``, else
  ``created_at``, else ``id`` for application tables; ``ingested_at`` for
  ``time_series`` -- and a *watermark*: the change value and primary key of the last
  row copied. A run reads only rows at or after the watermark (minus a small overlap
  for transactions that committed late), ordered by (change, primary key).
* **Nothing lost, nothing duplicated after kill -9.** Rows are upserted by primary
  key (so copying a row twice is harmless) and each batch is written together with
  its table's new watermark in ONE replica transaction. The watermarks live in the
  replica itself -- a JSON document in ``cache_entries`` (id -1, key
  ``replication:watermarks``) -- so batch and watermark commit or vanish together.
* **Consistent for readers.** Each lineage is read from one source snapshot, parents
  before children, and a reader of the replica sees whole batches only.

Deletes in the source (cache expiry, archived candles) are not propagated: the
replica keeps every row it has seen. Rows updated without touching their change
column (tables without ``updated_at``) are re-copied only within the overlap.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Table,
    UniqueConstraint,
    and_,
    delete,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from cryptotrading import migrations
from cryptotrading.common.views import AsDict
from cryptotrading.db.engine import READ_ONLY
from cryptotrading.db.session import translate, translate_errors
from cryptotrading.errors import ConfigurationError, NotFoundError, SchemaVersionError
from cryptotrading.models import APP_LINEAGE, MARKET_LINEAGE, CacheEntry, lineage_tables
from cryptotrading.stores import Store, Stores

WATERMARK_KEY = "replication:watermarks"
#: Source ids are positive; this row of the replica's cache_entries is never overwritten.
WATERMARK_ID = -1
DEFAULT_BATCH = 5_000
#: Rows whose change value lies this far before the watermark are read again, in case
#: their transaction committed after a later one was replicated.
DEFAULT_OVERLAP_SECONDS = 5.0

_CACHE: Table = CacheEntry.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class TableSpec:
    """How one table is replicated: its lineage, change column and what it holds."""

    lineage: str
    table: Table
    change: str
    #: "datetime", "epoch_ms" or "id"
    kind: str

    @property
    def key(self) -> str:
        return f"{self.lineage}.{self.table.name}"

    @property
    def change_column(self) -> Column[Any]:
        return self.table.c[self.change]

    @property
    def pk(self) -> list[Column[Any]]:
        return list(self.table.primary_key.columns)


def table_specs() -> list[TableSpec]:
    """Every replicated table, parents before children, application then market."""
    specs = []
    for table in lineage_tables(APP_LINEAGE):
        for name, kind in (("updated_at", "datetime"), ("created_at", "datetime"), ("id", "id")):
            if name in table.c:
                specs.append(TableSpec(APP_LINEAGE, table, name, kind))
                break
    for table in lineage_tables(MARKET_LINEAGE):
        specs.append(TableSpec(MARKET_LINEAGE, table, "ingested_at", "epoch_ms"))
    return specs


@dataclass
class Watermark(AsDict):
    """The last row copied of one table: its change value and primary key."""

    value: Any = None
    pk: list[Any] = field(default_factory=list)
    rows_copied: int = 0
    replicated_at: str | None = None


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _decode(spec: TableSpec, value: Any) -> Any:
    if value is None or spec.kind != "datetime":
        return value
    return datetime.fromisoformat(value)


@dataclass
class TableRun(AsDict):
    """What one run did to one table."""

    table: str
    rows: int = 0
    batches: int = 0
    seconds: float = 0.0


@dataclass
class TableLag(AsDict):
    """How far the replica trails the source for one table."""

    table: str
    source_rows: int
    replica_rows: int
    pending_rows: int
    lag_seconds: float | None
    replicated_at: str | None


# -- the replica's watermark document ------------------------------------------------


def load_document(connection: Connection) -> dict[str, Any]:
    """The replica's replication document: ``tables`` (watermarks) and ``last_pass``."""
    value = connection.execute(
        select(_CACHE.c.value).where(_CACHE.c.id == WATERMARK_ID)
    ).scalar_one_or_none()
    if isinstance(value, str):  # defensive: JSON text from a foreign writer
        value = json.loads(value)
    return dict(value) if isinstance(value, dict) else {}


def load_watermarks(connection: Connection) -> dict[str, dict[str, Any]]:
    tables = load_document(connection).get("tables", {})
    return dict(tables) if isinstance(tables, dict) else {}


def last_pass(connection: Connection) -> datetime | None:
    """When the last complete replication pass ended (None: never)."""
    stamp = load_document(connection).get("last_pass")
    return datetime.fromisoformat(stamp) if isinstance(stamp, str) else None


def _save_document(connection: Connection, **changes: Any) -> None:
    document = load_document(connection)
    tables = document.get("tables")
    document["tables"] = {
        **(tables if isinstance(tables, dict) else {}),
        **changes.pop("tables", {}),
    }
    now = datetime.now(UTC)
    document.update(changes, updated_at=now.isoformat())
    values = {
        "id": WATERMARK_ID,
        "cache_key": WATERMARK_KEY,
        "value": document,
        "created_at": now,
        "updated_at": now,
        "hit_count": 0,
    }
    statement = _insert_for(connection)(_CACHE).values(values)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[_CACHE.c.id],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
    )


def _save_watermark(connection: Connection, key: str, mark: Watermark) -> None:
    _save_document(connection, tables={key: mark.as_dict()})


def _insert_for(connection: Connection) -> Callable[[Table], Any]:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def _unique_keys(table: Table) -> list[list[Column[Any]]]:
    """Column sets of the table's unique constraints other than the primary key."""
    return [
        list(constraint.columns)
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    ]


def _drop_superseded(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Delete replica rows that hold a unique key now carried by another primary key.

    The source's unique constraint says only one row may hold the key, so the
    replica's older row was deleted in the source (e.g. an expired cache entry whose
    key was inserted again): removing it propagates that delete instead of letting
    the upsert fail on the unique constraint.
    """
    pk = list(table.primary_key.columns)
    ids = [tuple(row[c.name] for c in pk) for row in rows]
    for columns in _unique_keys(table):
        keys = {
            tuple(row[c.name] for c in columns)
            for row in rows
            if all(row[c.name] is not None for c in columns)
        }
        if not keys:
            continue
        condition = and_(tuple_(*columns).in_(list(keys)), tuple_(*pk).not_in(ids))
        if table is _CACHE:
            condition = and_(condition, _CACHE.c.id != WATERMARK_ID)
        connection.execute(delete(table).where(condition))


def _upsert(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    _drop_superseded(connection, table, rows)
    statement = _insert_for(connection)(table)
    keys = [column.name for column in table.primary_key.columns]
    others = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
    if others:
        statement = statement.on_conflict_do_update(index_elements=keys, set_=others)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    connection.execute(statement, rows)


# -- stores ---------------------------------------------------------------------------


def replica_store(stores: Stores) -> Store:
    try:
        return stores.get("replica")
    except NotFoundError:
        raise ConfigurationError(
            f"layout {stores.settings.layout!r} has no replica store",
            hint="Use layout 'three' (rex.db) or set CRYPTOTRADING_REPLICA_URL to any store URL.",
        ) from None


def _check_ready(stores: Stores, replica: Store) -> None:
    for lineage in (APP_LINEAGE, MARKET_LINEAGE):
        source = stores.primary_for(lineage)
        if source.url == replica.url:
            raise ConfigurationError(
                f"the replica store is the {source.name!r} store itself ({replica.display_url})",
                hint="Point CRYPTOTRADING_REPLICA_URL at another database.",
            )
        for store in (source, replica):
            found = migrations.current(stores.engine(store), lineage)
            if found != migrations.head(lineage):
                raise SchemaVersionError(
                    f"store {store.name!r} is at schema version {found or 'none'} of lineage "
                    f"{lineage!r}; replication needs {migrations.head(lineage)} on both sides"
                )


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One read transaction: every table of a lineage is read at the same instant."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:
            connection = connection.execution_options(**{READ_ONLY: True})
        with connection.begin():
            yield connection


def _without_fk_checks(connection: Connection) -> None:
    """The replica takes rows in the source's order; the source already enforced its
    foreign keys. SQLite: the connection's pragma is switched off for this session;
    PostgreSQL: replication role (superusers only; otherwise order alone must do)."""
    if connection.dialect.name == "sqlite":
        return  # set before BEGIN in _replica_connection
    superuser = connection.exec_driver_sql("SELECT current_setting('is_superuser')").scalar()
    if superuser == "on":
        connection.exec_driver_sql("SET LOCAL session_replication_role = replica")


@contextmanager
def _replica_connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        sqlite_raw = connection.dialect.name == "sqlite" and raw is not None
        if sqlite_raw:
            raw.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
        try:
            yield connection
        finally:
            if sqlite_raw:
                raw.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]


@contextmanager
def _writing_replica() -> Iterator[None]:
    """Driver errors while writing the replica, with a hint that names the target."""
    try:
        yield
    except DBAPIError as exc:
        error = translate(exc, "replica")
        error.hint = (
            "Make the replica writable (file and directory permissions, free disk space, or "
            "GRANT INSERT, UPDATE on PostgreSQL); the source stores were not changed and the "
            "next run resumes where this one stopped."
        )
        raise error from exc


# -- one run -------------------------------------------------------------------------


def _changed_rows(spec: TableSpec, mark: Watermark, overlap: float) -> Any:
    query = select(spec.table)
    if spec.table is _CACHE:  # the replica's own row; this key is reserved
        query = query.where(_CACHE.c.cache_key != WATERMARK_KEY)
    order = [spec.change_column, *[c for c in spec.pk if c.name != spec.change]]
    if mark.value is not None:
        value = _decode(spec, mark.value)
        if spec.kind == "id" or overlap <= 0:
            query = query.where(_after(spec, mark, value))
        elif spec.kind == "epoch_ms":
            query = query.where(spec.change_column >= value - int(overlap * 1000))
        else:
            query = query.where(spec.change_column >= value - timedelta(seconds=overlap))
    return query.order_by(*order)


def _replicate_table(
    spec: TableSpec,
    source: Connection,
    replica_engine: Engine,
    batch_size: int,
    overlap: float,
    progress: Callable[[str, int], None] | None,
) -> TableRun:
    started = time.perf_counter()
    run = TableRun(spec.key)
    with replica_engine.connect() as connection:
        marks = load_watermarks(connection)
    mark = Watermark(**marks.get(spec.key, {}))
    result = source.execution_options(yield_per=batch_size).execute(
        _changed_rows(spec, mark, overlap)
    )
    pk_names = [c.name for c in spec.pk]
    for partition in result.mappings().partitions(batch_size):
        rows = [dict(row) for row in partition]
        last = rows[-1]
        mark.value = _encode(last[spec.change])
        mark.pk = [_encode(last[name]) for name in pk_names]
        mark.rows_copied += len(rows)
        mark.replicated_at = datetime.now(UTC).isoformat()
        with (
            _writing_replica(),
            _replica_connection(replica_engine) as connection,
            connection.begin(),
        ):
            _without_fk_checks(connection)
            _upsert(connection, spec.table, rows)
            _save_watermark(connection, spec.key, mark)
        run.rows += len(rows)
        run.batches += 1
        if progress is not None:
            progress(spec.key, len(rows))
    run.seconds = round(time.perf_counter() - started, 3)
    return run


def replicate_once(
    stores: Stores,
    *,
    batch_size: int = DEFAULT_BATCH,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    progress: Callable[[str, int], None] | None = None,
) -> list[TableRun]:
    """Copy every row changed since the last run into the replica; one pass."""
    if batch_size < 1:
        raise ConfigurationError(
            "batch size must be at least 1", hint="Pass --batch-size 1 or more."
        )
    replica = replica_store(stores)
    _check_ready(stores, replica)
    replica_engine = stores.engine(replica)
    runs = []
    specs = table_specs()
    for lineage in (APP_LINEAGE, MARKET_LINEAGE):
        source = stores.primary_for(lineage)
        with (
            translate_errors(f"replication {source.name} -> {replica.name}"),
            _snapshot(stores.engine(source)) as connection,
        ):
            for spec in specs:
                if spec.lineage == lineage:
                    runs.append(
                        _replicate_table(
                            spec, connection, replica_engine, batch_size, overlap_seconds, progress
                        )
                    )
    with _writing_replica(), replica_engine.begin() as connection:
        _save_document(connection, last_pass=datetime.now(UTC).isoformat())
    return runs


def follow(
    stores: Stores,
    *,
    interval: float = 5.0,
    batch_size: int = DEFAULT_BATCH,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    cycles: int | None = None,
    on_cycle: Callable[[list[TableRun]], None] | None = None,
) -> int:
    """Replicate every *interval* seconds (*cycles* times, or until interrupted)."""
    done = 0
    while cycles is None or done < cycles:
        started = time.monotonic()
        runs = replicate_once(stores, batch_size=batch_size, overlap_seconds=overlap_seconds)
        done += 1
        if on_cycle is not None:
            on_cycle(runs)
        if cycles is None or done < cycles:
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    return done


# -- status ----------------------------------------------------------------------------


def _lag_seconds(spec: TableSpec, newest: Any, mark_value: Any) -> float | None:
    if newest is None:
        return 0.0
    if spec.kind == "id":
        return None
    if mark_value is None:
        mark_value = 0 if spec.kind == "epoch_ms" else datetime(1970, 1, 1, tzinfo=UTC)
    if spec.kind == "epoch_ms":
        return max(0.0, (int(newest) - int(mark_value)) / 1000)
    return max(0.0, float((newest - mark_value).total_seconds()))


def status(stores: Stores) -> list[TableLag]:
    """Per table: rows in source and replica, rows not yet copied, lag in seconds."""
    replica = replica_store(stores)
    replica_engine = stores.engine(replica)
    with translate_errors(f"replica {replica.name}"), replica_engine.connect() as connection:
        marks = load_watermarks(connection)
    lags = []
    for spec in table_specs():
        source = stores.primary_for(spec.lineage)
        mark = Watermark(**marks.get(spec.key, {}))
        value = _decode(spec, mark.value)
        with translate_errors(source.name), stores.engine(source).connect() as connection:
            connection = connection.execution_options(**{READ_ONLY: True})
            total, newest = connection.execute(
                select(func.count(), func.max(spec.change_column)).select_from(spec.table)
            ).one()
            pending = total
            if value is not None:
                pending = connection.execute(
                    select(func.count()).select_from(spec.table).where(_after(spec, mark, value))
                ).scalar_one()
        with translate_errors(replica.name), replica_engine.connect() as connection:
            query = select(func.count()).select_from(spec.table)
            if spec.table is _CACHE:
                query = query.where(_CACHE.c.id != WATERMARK_ID)
            replica_rows = connection.execute(query).scalar_one()
        lags.append(
            TableLag(
                spec.key,
                int(total),
                int(replica_rows),
                int(pending),
                _lag_seconds(spec, newest, value) if pending else 0.0,
                mark.replicated_at,
            )
        )
    return lags


def _after(spec: TableSpec, mark: Watermark, value: Any) -> Any:
    """Rows strictly after the watermark row in (change, primary key) order."""
    others = [c for c in spec.pk if c.name != spec.change]
    if not others or len(mark.pk) != len(spec.pk):
        return spec.change_column > value
    pk_values = [
        _decode(spec, v) if c.name == spec.change else v
        for c, v in zip(spec.pk, mark.pk, strict=True)
        if c.name != spec.change
    ]
    return or_(
        spec.change_column > value,
        and_(spec.change_column == value, tuple_(*others) > tuple_(*pk_values)),
    )
