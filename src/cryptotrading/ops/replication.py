"""Continuous replication into the replica store (``rex.db`` in layout ``three``, or
``CRYPTOTRADING_REPLICA_URL``) from the change logs the sources' triggers write.

How it stays correct:

* **Nothing missed.** Every insert, update and delete of a replicated table is logged
  by a trigger in the writing transaction (:mod:`cryptotrading.migrations.capture`),
  whoever the writer is. A pass reads the log entries after the replica's position
  (:mod:`cryptotrading.ops.changelog`) and makes the replica's rows of those keys (or
  candle ranges) equal to the source's in one source snapshot.
* **Nothing lost, nothing doubled after kill -9.** Each page of changes is applied in
  ONE replica transaction together with the new position (``replication_cursors``);
  applying a page twice is harmless (state-based).
* **Nothing copied twice.** A pass with nothing new reads the logs' tails and copies no
  row; a bulk import is copied once.
* **A first pass (or a new source) copies everything** from one snapshot: every row,
  and deletes the replica rows the source does not hold.

The replica's own capture triggers are dropped: a replica is nobody's source. Its
positions are also registered in the application store (``replica_readers``) so the
change log is trimmed only below every replica (:func:`trim_logs`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, select

from cryptotrading import migrations
from cryptotrading.common.clock import epoch_ms
from cryptotrading.common.views import AsDict
from cryptotrading.db.engine import READ_ONLY
from cryptotrading.db.session import translate_errors
from cryptotrading.errors import (
    ConfigurationError,
    NotFoundError,
    SchemaVersionError,
    StoreError,
)
from cryptotrading.migrations import capture
from cryptotrading.migrations.capture import SERIES_LOG
from cryptotrading.models import APP_LINEAGE, ReplicaReader, ReplicationCursor
from cryptotrading.ops import changelog, replica_apply
from cryptotrading.ops.changelog import Cursor, Position
from cryptotrading.ops.replicated import LINEAGES, replicated_tables
from cryptotrading.stores import Store, Stores

DEFAULT_BATCH = 5_000
_READERS: Table = ReplicaReader.__table__  # type: ignore[assignment]
_CURSORS: Table = ReplicationCursor.__table__  # type: ignore[assignment]


@dataclass
class TableRun(AsDict):
    """What one pass did to one table."""

    table: str
    rows: int = 0
    batches: int = 0
    seconds: float = 0.0


@dataclass
class TableLag(AsDict):
    """Changes of one table the replica has not applied yet."""

    table: str
    #: "change-log" (triggers + replicator) or "logical" (PostgreSQL subscription)
    mode: str
    #: change-log: log entries not applied yet; logical: None (see lag_bytes)
    pending_changes: int | None
    oldest_pending_seconds: float | None
    replicated_at: str | None
    #: logical: WAL bytes the subscription has not confirmed, and the table's sync state
    lag_bytes: int | None = None
    sync_state: str | None = None


class Stop:
    """Asks a running pass or ``follow`` loop to stop between two transactions."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)


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
    for lineage in LINEAGES:
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
                    f"{lineage!r}; replication needs {migrations.head(lineage)} on both sides",
                    hint="Run `cryptotrading db migrate` (the replica first, then the sources).",
                )


def _logical(stores: Stores, lineage: str) -> bool:
    """True when PostgreSQL's logical replication carries *lineage* (``replicate setup``)."""
    try:
        from cryptotrading.ops import logical_replication
    except ImportError:  # pragma: no cover - the module ships with the package
        return False
    is_active: Callable[[Stores, str], bool] | None = getattr(
        logical_replication, "is_active", None
    )
    return bool(is_active and is_active(stores, lineage))


def source_identity(store: Store, connection: Connection) -> str:
    """Names the source database itself, not just its address: a restore (which swaps
    in another file or database) gives it a new identity, and a replica whose cursor
    names another identity copies everything again instead of trusting old positions.
    SQLite: absolute path + inode; PostgreSQL: URL (password hidden) + database oid."""
    if store.path is not None:
        return f"{store.identity}#{store.path.stat().st_ino}"
    oid = connection.exec_driver_sql(
        "SELECT oid FROM pg_database WHERE datname = current_database()"
    ).scalar()
    return f"{store.identity}#{oid}"


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One read transaction: every table and log of a lineage read at one instant."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:
            connection = connection.execution_options(**{READ_ONLY: True})
        with connection.begin():
            yield connection


# -- one pass ------------------------------------------------------------------------


class _Pass:
    """One lineage's pass: a source snapshot, the replica engine, the counters."""

    def __init__(
        self,
        lineage: str,
        source: Connection,
        source_name: str,
        replica: Engine,
        batch_size: int,
        stop: Stop | None,
        progress: Callable[[str, int], None] | None,
    ) -> None:
        self.lineage = lineage
        self.source = source
        self.source_name = source_name
        self.replica = replica
        self.batch_size = batch_size
        self.stop = stop
        self.progress = progress
        self.tables = replicated_tables(lineage)
        self.runs = {t.name: TableRun(f"{lineage}.{t.name}") for t in self.tables}
        self.cursor = Cursor(source_name)
        #: True once a transaction moved the cursor (the readers' registry follows).
        self.moved = False

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def commit(self, apply: Callable[[Connection], dict[str, int]]) -> None:
        """Run *apply* and save the cursor in one replica transaction."""
        started = time.perf_counter()
        with replica_apply.replica_transaction(self.replica) as connection:
            counts = apply(connection)
            replica_apply.save_cursor(
                connection, self.lineage, self.source_name, self.cursor.encode()
            )
        self.moved = True
        seconds = time.perf_counter() - started
        for name, rows in counts.items():
            run = self.runs[name]
            run.rows += rows
            run.batches += 1
            run.seconds = round(run.seconds + seconds, 3)
            if self.progress is not None and rows:
                self.progress(run.table, rows)

    # -- the first pass: everything from one snapshot --

    def initial(self) -> None:
        for name in changelog.log_names(self.lineage):
            self.cursor.logs[name] = changelog.start_position(self.source, name)
        for table in self.tables:
            if table.name == replica_apply.SERIES.name:
                self._initial_series()
            else:
                self._initial_rows(table)
            if self.stopped():
                raise _Stopped
        self.commit(lambda _connection: {})

    def _initial_rows(self, table: Table) -> None:
        pk = list(table.primary_key.columns)
        keys: set[tuple[Any, ...]] = set()
        result = self.source.execution_options(yield_per=self.batch_size).execute(
            select(table).order_by(*pk)
        )
        for partition in result.mappings().partitions(self.batch_size):
            rows = [dict(row) for row in partition]
            keys.update(tuple(row[c.name] for c in pk) for row in rows)
            self._write(table, partial(replica_apply.upsert, table=table, rows=rows), len(rows))
        with self.replica.connect() as connection:
            stale = [
                tuple(row) for row in connection.execute(select(*pk)) if tuple(row) not in keys
            ]
        for start in range(0, len(stale), replica_apply.KEY_CHUNK):
            chunk = stale[start : start + replica_apply.KEY_CHUNK]
            self._write(table, partial(self._copy_keys, table=table, keys=chunk), len(chunk))

    def _copy_keys(self, replica: Connection, table: Table, keys: list[tuple[Any, ...]]) -> int:
        return replica_apply.copy_keys(self.source, replica, table, keys)

    def _write(self, table: Table, apply: Callable[[Connection], Any], rows: int) -> None:
        """A replica transaction of the initial copy (the cursor is saved at the end)."""
        started = time.perf_counter()
        with replica_apply.replica_transaction(self.replica) as connection:
            apply(connection)
        run = self.runs[table.name]
        run.rows += rows
        run.batches += 1
        run.seconds = round(run.seconds + time.perf_counter() - started, 3)
        if self.progress is not None and rows:
            self.progress(run.table, rows)

    def _initial_series(self) -> None:
        series_table = replica_apply.SERIES
        c = series_table.c
        bounds = select(c.symbol, c.frequency, c.exchange).group_by(
            c.symbol, c.frequency, c.exchange
        )
        found = {tuple(r) for r in self.source.execute(bounds)}
        with self.replica.connect() as connection:
            found |= {tuple(r) for r in connection.execute(bounds)}
        for series in sorted(found):
            self._copy_range(series, -(2**62), 2**62, commit_cursor=False)

    def _copy_range(
        self, series: tuple[str, str, str], first: int, last: int, *, commit_cursor: bool
    ) -> None:
        """The replica's candles of *series* in ``[first, last]`` become the source's,
        one replica transaction per batch of candles."""
        start = first
        while True:
            rows = replica_apply.series_rows(self.source, series, start, last, self.batch_size)
            end = last if len(rows) < self.batch_size else int(rows[-1]["timestamp"])

            def apply(
                connection: Connection, s: int = start, e: int = end, batch: list[Any] = rows
            ) -> dict[str, int]:
                replica_apply.replace_range(connection, series, s, e, batch)
                return {replica_apply.SERIES.name: len(batch)}

            if commit_cursor and end == last:
                self.commit(apply)
            else:
                self._write(replica_apply.SERIES, apply, len(rows))
            if end == last:
                return
            if self.stopped():  # the page is applied again, whole, by the next pass
                raise _Stopped
            start = end + 1

    # -- later passes: the logs --

    def incremental(self) -> None:
        """Apply every entry committed before this pass's snapshot: on PostgreSQL an
        interrupted pass's window is finished first, then a window up to this snapshot
        is opened and applied too."""
        for name in changelog.log_names(self.lineage):
            position = self.cursor.logs.setdefault(
                name, changelog.start_position(self.source, name)
            )
            fresh = False
            while not self.stopped():
                if position.prev is not None and position.cur is None:
                    if fresh or not changelog.open_window(self.source, position):
                        break
                    fresh = True
                entries = changelog.page(self.source, name, position, self.batch_size)
                if name == SERIES_LOG:
                    self._apply_ranges(position, entries)
                else:
                    self._apply_rows(position, entries)
                if not entries and position.prev is None:
                    break

    def _apply_rows(self, position: Position, entries: list[Any]) -> None:
        if not entries:  # nothing to write: an empty window closes in memory only
            changelog.advance(position, entries)
            return
        keys: dict[str, list[tuple[Any, ...]]] = {}
        emptied = {e["table_name"] for e in entries if e["op"] == capture.TRUNCATED_OP}
        for entry in entries:
            if entry["table_name"] not in emptied:
                table_keys = keys.setdefault(entry["table_name"], [])
                table_keys.append(replica_apply.decode_key(entry["row_key"]))
        for table in self.tables:  # TRUNCATE: the whole table copied from the snapshot
            if table.name in emptied:
                self._initial_rows(table)
        changelog.advance(position, entries)

        def apply(connection: Connection) -> dict[str, int]:
            counts = {}
            for table in self.tables:  # parents first
                if table.name in keys:
                    unique = list(dict.fromkeys(keys[table.name]))
                    counts[table.name] = replica_apply.copy_keys(
                        self.source, connection, table, unique
                    )
            return counts

        self.commit(apply)

    def _apply_ranges(self, position: Position, entries: list[Any]) -> None:
        if not entries:  # nothing to write: an empty window closes in memory only
            changelog.advance(position, entries)
            return
        if any(e["symbol"] == capture.ALL_SERIES for e in entries):
            self._initial_series()  # TRUNCATE: every series copied from the snapshot
            changelog.advance(position, entries)
            self.commit(lambda _connection: {})
            return
        ranges = replica_apply.merge_ranges(entries)
        changelog.advance(position, entries)
        spans = [(series, span) for series, spans in sorted(ranges.items()) for span in spans]
        for index, (series, (first, last)) in enumerate(spans):
            self._copy_range(series, first, last, commit_cursor=index == len(spans) - 1)


class _Stopped(Exception):
    """A stop was asked for between two replica transactions of one page or copy."""


def _replicate_lineage(
    stores: Stores,
    lineage: str,
    replica: Store,
    batch_size: int,
    stop: Stop | None,
    progress: Callable[[str, int], None] | None,
    registered: dict[str, float] | None,
) -> list[TableRun]:
    source = stores.primary_for(lineage)
    replica_engine = stores.engine(replica)
    with translate_errors(f"replication {source.name} -> {replica.name}"):
        with replica_engine.connect() as connection:
            row = replica_apply.load_cursor_row(connection, lineage)
        with _snapshot(stores.engine(source)) as snapshot:
            identity = source_identity(source, snapshot)
            run = _Pass(lineage, snapshot, identity, replica_engine, batch_size, stop, progress)
            try:
                if row is None or row[0] != identity:
                    run.initial()
                else:
                    run.cursor = Cursor.decode(identity, row[1])
                    run.incremental()
            except _Stopped:
                pass  # whatever was committed stays; the rest is applied by the next pass
        if run.moved:
            _register(stores, replica, lineage, run.cursor, registered)
    return list(run.runs.values())


#: ``follow`` registers a replica's position at most this often: its passes must not
#: queue for a SQLite application store's write lock every time (a late registration
#: only keeps a little more log; trimming stays below the true position).
REGISTER_EVERY_SECONDS = 10.0


def _register(
    stores: Stores,
    replica: Store,
    lineage: str,
    cursor: Cursor,
    registered: dict[str, float] | None,
) -> None:
    """Record the position, unless *registered* (a ``follow`` loop's lineage -> last
    registration time) says it was recorded less than REGISTER_EVERY_SECONDS ago."""
    now = time.monotonic()
    if registered is not None:
        if now - registered.get(lineage, -REGISTER_EVERY_SECONDS) < REGISTER_EVERY_SECONDS:
            return
        registered[lineage] = now
    _record_reader(stores, replica, lineage, cursor)


def _record_reader(stores: Stores, replica: Store, lineage: str, cursor: Cursor) -> None:
    """Record the replica's position in the application store (trimming reads it)."""
    app = stores.primary_for(APP_LINEAGE)
    statement = replica_apply.insert_for_dialect(stores.engine(app).dialect.name)(_READERS).values(
        replica=replica.identity,
        lineage=lineage,
        position=cursor.encode(),
        updated_at=epoch_ms(),
    )
    with stores.engine(app).begin() as connection:
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[_READERS.c.replica, _READERS.c.lineage],
                set_={k: statement.excluded[k] for k in ("position", "updated_at")},
            )
        )


def replicate_once(
    stores: Stores,
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[str, int], None] | None = None,
    stop: Stop | None = None,
    registered: dict[str, float] | None = None,
) -> list[TableRun]:
    """Apply every change logged since the last pass to the replica; one pass (its
    position registered unless *registered*, a ``follow`` loop's, says it just was)."""
    if batch_size < 1:
        raise ConfigurationError(
            "batch size must be at least 1", hint="Pass --batch-size 1 or more."
        )
    replica = replica_store(stores)
    _check_ready(stores, replica)
    replica_apply.stop_capture(stores.engine(replica), LINEAGES)
    runs: list[TableRun] = []
    for lineage in LINEAGES:
        if stop is not None and stop.is_set():
            break
        if _logical(stores, lineage):
            continue
        runs += _replicate_lineage(stores, lineage, replica, batch_size, stop, progress, registered)
    return runs


def follow(
    stores: Stores,
    *,
    interval: float = 5.0,
    batch_size: int = DEFAULT_BATCH,
    cycles: int | None = None,
    on_cycle: Callable[[list[TableRun]], None] | None = None,
    stop: Stop | None = None,
    on_error: Callable[[StoreError], None] | None = None,
) -> int:
    """Replicate every *interval* seconds (*cycles* times, or until *stop* is set);
    between passes the loop sleeps (no CPU), and a stop ends it between two replica
    transactions. With *on_error*, a pass that fails on a store (busy, unreachable,
    read-only) is reported to it and retried at the next interval instead of ending
    the loop; schema and configuration errors always end it."""
    stop = stop or Stop()
    registered: dict[str, float] = {}
    done = 0
    while (cycles is None or done < cycles) and not stop.is_set():
        started = time.monotonic()
        try:
            runs = replicate_once(stores, batch_size=batch_size, stop=stop, registered=registered)
        except StoreError as exc:  # busy, unreachable, read-only: try again next time
            if isinstance(exc, SchemaVersionError) or on_error is None:
                raise
            on_error(exc)
            runs = []
        done += 1
        if on_cycle is not None:
            on_cycle(runs)
        if cycles is None or done < cycles:
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
    return done


# -- status ----------------------------------------------------------------------------


def last_pass(connection: Connection) -> datetime | None:
    """When the replica last committed a pass (None: never); *connection* is the replica's."""
    stamp = connection.execute(
        select(_CURSORS.c.updated_at).order_by(_CURSORS.c.updated_at.desc())
    ).scalar()
    return None if stamp is None else datetime.fromtimestamp(int(stamp) / 1000, UTC)


def status(stores: Stores) -> list[TableLag]:
    """Per replicated table: changes not yet applied and the age of the oldest one."""
    replica = replica_store(stores)
    replica_engine = stores.engine(replica)
    now = epoch_ms()
    lags: list[TableLag] = []
    for lineage in LINEAGES:
        source = stores.primary_for(lineage)
        names = [f"{lineage}.{t.name}" for t in replicated_tables(lineage)]
        if _logical(stores, lineage):
            lags += _logical_lags(stores, lineage, names)
            continue
        with translate_errors(f"replica {replica.name}"), replica_engine.connect() as connection:
            row = replica_apply.load_cursor_row(connection, lineage)
        stamp = None
        found: dict[str, tuple[int, Any]] = {}
        with translate_errors(source.name), _snapshot(stores.engine(source)) as connection:
            identity = source_identity(source, connection)
            if row is None or row[0] != identity:  # all rows wait for a first copy
                for table in replicated_tables(lineage):
                    count = connection.execute(select(func.count()).select_from(table)).scalar()
                    found[table.name] = (int(count or 0), None)
            else:
                cursor = Cursor.decode(identity, row[1])
                for name in changelog.log_names(lineage):
                    position = cursor.logs.get(name, Position())
                    for table_name, count, oldest in changelog.pending(connection, name, position):
                        found[table_name] = (count, oldest)
        if row is not None:
            with replica_engine.connect() as connection:
                when = last_pass(connection)
                stamp = None if when is None else when.isoformat()
        for name in names:
            count, oldest = found.get(name.split(".", 1)[1], (0, None))
            age = None if oldest is None else max(0.0, (now - int(oldest)) / 1000)
            lags.append(TableLag(name, "change-log", count, age, stamp))
    return lags


def _logical_lags(stores: Stores, lineage: str, names: list[str]) -> list[TableLag]:
    from cryptotrading.ops import logical_replication

    found = {s.lineage: s for s in logical_replication.status(stores)}
    subscription = found.get(lineage)
    lags = []
    for name in names:
        table = name.split(".", 1)[1]
        lags.append(
            TableLag(
                name,
                "logical",
                None,
                None,
                None
                if subscription is None or subscription.last_message_at is None
                else subscription.last_message_at.isoformat(),
                None if subscription is None else subscription.lag_bytes,
                None if subscription is None else subscription.tables.get(table),
            )
        )
    return lags


# -- trimming ---------------------------------------------------------------------------


def reader_positions(stores: Stores, lineage: str) -> list[Cursor]:
    """Positions of every registered replica in *lineage*'s logs."""
    app = stores.primary_for(APP_LINEAGE)
    with stores.engine(app).connect() as connection:
        rows = connection.execute(
            select(_READERS.c.replica, _READERS.c.position).where(_READERS.c.lineage == lineage)
        ).all()
    return [Cursor.decode(str(name), str(position)) for name, position in rows]
