"""Writing source state into the replica: rows by key, candle ranges, cursors.

Every function takes the replica connection of an open transaction; the caller
commits the applied rows together with the new cursor, so a kill -9 leaves either
both or neither.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, UniqueConstraint, and_, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from cryptotrading.common.clock import epoch_ms
from cryptotrading.db.session import translate
from cryptotrading.migrations import capture
from cryptotrading.models import ReplicationCursor, TimeSeries

_CURSORS: Table = ReplicationCursor.__table__  # type: ignore[assignment]
SERIES: Table = TimeSeries.__table__  # type: ignore[assignment]
#: Keys per ``IN`` list (well under SQLite's 32,766 bound parameters).
KEY_CHUNK = 500


def insert_for_dialect(name: str) -> Callable[[Table], Any]:
    return postgresql.insert if name == "postgresql" else sqlite.insert


def insert_for(connection: Connection) -> Callable[[Table], Any]:
    return insert_for_dialect(connection.dialect.name)


def _unique_keys(table: Table) -> list[list[Any]]:
    return [
        list(constraint.columns)
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    ]


def _drop_superseded(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Delete replica rows holding a unique key that another primary key now carries
    (the source allows one such row, so the replica's older one is gone there)."""
    pk = list(table.primary_key.columns)
    ids = [tuple(row[c.name] for c in pk) for row in rows]
    for columns in _unique_keys(table):
        keys = {
            tuple(row[c.name] for c in columns)
            for row in rows
            if all(row[c.name] is not None for c in columns)
        }
        if keys:
            connection.execute(
                delete(table).where(and_(tuple_(*columns).in_(list(keys)), tuple_(*pk).not_in(ids)))
            )


#: ``connection.info`` key: foreign-key enforcement is off in this replica transaction.
FK_OFF = "cryptotrading_fk_off"


def upsert(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert *rows* or overwrite the replica's rows of the same primary key."""
    if not rows:
        return 0
    if _unique_keys(table) and connection.info.get(FK_OFF):
        # Unique values may move between rows of this batch (two users swap e-mails):
        # row-by-row upserts would collide, so the batch's rows are replaced whole.
        # Safe only with foreign keys off: a delete must not cascade in the replica.
        pk = list(table.primary_key.columns)
        ids = [tuple(row[c.name] for c in pk) for row in rows]
        for chunk in _chunks(ids, KEY_CHUNK):
            connection.execute(delete(table).where(tuple_(*pk).in_(chunk)))
    _drop_superseded(connection, table, rows)
    statement = insert_for(connection)(table)
    keys = [column.name for column in table.primary_key.columns]
    others = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
    if others:
        statement = statement.on_conflict_do_update(index_elements=keys, set_=others)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    connection.execute(statement, rows)
    return len(rows)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def copy_keys(
    source: Connection, replica: Connection, table: Table, keys: list[tuple[Any, ...]]
) -> int:
    """Make the replica's rows of *keys* equal the source's: upsert the rows the source
    holds, delete the others. Returns rows written or deleted."""
    pk = list(table.primary_key.columns)
    done = 0
    for chunk in _chunks(keys, KEY_CHUNK):
        rows = [
            dict(r) for r in source.execute(select(table).where(tuple_(*pk).in_(chunk))).mappings()
        ]
        found = {tuple(row[c.name] for c in pk) for row in rows}
        gone = [key for key in chunk if key not in found]
        if gone:
            replica.execute(delete(table).where(tuple_(*pk).in_(gone)))
        upsert(replica, table, rows)
        done += len(rows) + len(gone)
    return done


def decode_key(text: str) -> tuple[Any, ...]:
    value = json.loads(text)
    return tuple(value) if isinstance(value, list) else (value,)


def series_rows(
    source: Connection, series: tuple[str, str, str], first: int, last: int, limit: int
) -> list[dict[str, Any]]:
    symbol, frequency, exchange = series
    c = SERIES.c
    query = (
        select(SERIES)
        .where(
            c.symbol == symbol,
            c.frequency == frequency,
            c.exchange == exchange,
            c.timestamp >= first,
            c.timestamp <= last,
        )
        .order_by(c.timestamp)
        .limit(limit)
    )
    return [dict(r) for r in source.execute(query).mappings()]


def replace_range(
    replica: Connection,
    series: tuple[str, str, str],
    first: int,
    last: int,
    rows: list[dict[str, Any]],
) -> None:
    """The replica's candles of *series* in ``[first, last]`` become exactly *rows*."""
    symbol, frequency, exchange = series
    c = SERIES.c
    replica.execute(
        delete(SERIES).where(
            c.symbol == symbol,
            c.frequency == frequency,
            c.exchange == exchange,
            c.timestamp >= first,
            c.timestamp <= last,
        )
    )
    if rows:
        replica.execute(insert_for(replica)(SERIES), rows)


def merge_ranges(entries: Iterable[Any]) -> dict[tuple[str, str, str], list[list[int]]]:
    """Ranges per series from ``series_changes`` entries, overlapping ones merged."""
    ranges: dict[tuple[str, str, str], list[list[int]]] = {}
    for e in entries:
        ranges.setdefault((e["symbol"], e["frequency"], e["exchange"]), []).append(
            [int(e["first_ts"]), int(e["last_ts"])]
        )
    for key, spans in ranges.items():
        spans.sort()
        merged = [spans[0]]
        for first, last in spans[1:]:
            if first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        ranges[key] = merged
    return ranges


def load_cursor_row(replica: Connection, lineage: str) -> tuple[str, str] | None:
    row = replica.execute(
        select(_CURSORS.c.source, _CURSORS.c.position).where(_CURSORS.c.lineage == lineage)
    ).first()
    return None if row is None else (str(row[0]), str(row[1]))


def save_cursor(replica: Connection, lineage: str, source: str, position: str) -> None:
    values = {"lineage": lineage, "source": source, "position": position, "updated_at": epoch_ms()}
    statement = insert_for(replica)(_CURSORS).values(values)
    replica.execute(
        statement.on_conflict_do_update(
            index_elements=[_CURSORS.c.lineage],
            set_={k: statement.excluded[k] for k in ("source", "position", "updated_at")},
        )
    )


@contextmanager
def replica_transaction(engine: Engine) -> Iterator[Connection]:
    """A replica write transaction with foreign-key checks off (the source enforced
    them; rows arrive in log order): SQLite's pragma outside the transaction,
    PostgreSQL's replication role for superusers (otherwise parents-first order)."""
    try:
        with engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            on_sqlite = connection.dialect.name == "sqlite" and raw is not None
            if on_sqlite:
                raw.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
            try:
                with connection.begin():
                    fk_off = on_sqlite
                    if not on_sqlite:
                        superuser = connection.exec_driver_sql(
                            "SELECT current_setting('is_superuser')"
                        ).scalar()
                        if superuser == "on":
                            connection.exec_driver_sql(
                                "SET LOCAL session_replication_role = replica"
                            )
                            fk_off = True
                    connection.info[FK_OFF] = fk_off
                    yield connection
            finally:
                connection.info.pop(FK_OFF, None)
                if on_sqlite:
                    raw.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]
    except DBAPIError as exc:
        error = translate(exc, "replica")
        error.hint = (
            "Make the replica writable (file and directory permissions, free disk space, or "
            "GRANT INSERT, UPDATE, DELETE on PostgreSQL; the first pass also drops the "
            "replica's capture triggers, which takes its owner); the source stores were not "
            "changed and the next run resumes where this one stopped."
        )
        raise error from exc


def stop_capture(engine: Engine, lineages: Iterable[str]) -> None:
    """A replica records no changes of its own: drop its capture triggers."""
    with engine.connect() as connection:
        if not capture.installed(connection):
            return
    with replica_transaction(engine) as connection:
        if capture.installed(connection):
            for lineage in lineages:
                capture.uninstall(connection, lineage)
