"""Change capture: database triggers that record every insert, update and delete of a
replicated table in the store's change log, inside the transaction that makes them.

No writer can change a row unseen -- our library, plain SQL, another program -- because
the database itself writes the log. Three logs exist from schema version 2.2.0:

* ``change_log`` (application lineage) and ``market_change_log`` (market lineage): one
  row per changed row: table, operation, primary key as a JSON array and, on SQLite, the
  row after the change as a JSON object (point-in-time recovery replays it; reals are
  kept exact with ``%!.17g``, blobs as hex).
* ``series_changes``: key ranges of ``time_series``. On PostgreSQL statement-level
  triggers with transition tables log one range per series and statement (also on
  every partition, so writes addressed to a partition are caught). On SQLite, whose
  triggers run per row, the library's own batch writers log one range per batch and
  drop the row triggers for the length of their transaction (:func:`series_batch`);
  every other writer fires the row triggers and logs a range per candle.

Triggers are (re)installed after every migration (:func:`install`; SQLite batch
migrations recreate tables and lose them) from the tables as they exist, never on a
replica (a store holding ``replication_cursors`` rows): a replica is nobody's source.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, inspect

from cryptotrading.models import APP_LINEAGE, EXTENSIONS, MARKET_LINEAGE, lineage_tables

PREFIX = "ct_capture_"
LOG_TABLES = {APP_LINEAGE: "change_log", MARKET_LINEAGE: "market_change_log"}
SERIES_TABLE = "time_series"
SERIES_LOG = "series_changes"
CURSORS = "replication_cursors"
#: Epoch milliseconds of the change, as each backend computes it in a trigger.
SQLITE_NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
_PG_NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
_PG_TXID = "pg_current_xact_id()::text::bigint"
_OPS = {"i": "INSERT", "u": "UPDATE", "d": "DELETE"}
#: PostgreSQL's TRUNCATE fires no row or transition-table trigger: one entry says it,
#: op ``T`` in a row log, symbol ``*`` in ``series_changes`` (the replica copies the
#: whole table again). SQLite has no TRUNCATE (``DELETE`` fires the row triggers).
TRUNCATED_OP = "T"
ALL_SERIES = "*"


def captured_tables(lineage: str) -> list[str]:
    """Names of the tables of *lineage* whose changes are captured (the replicated ones)."""
    return [
        table.name
        for table in lineage_tables(lineage)
        if table.name not in EXTENSIONS or EXTENSIONS[table.name].replicated
    ]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _run(connection: Connection, statement: str) -> None:
    """Execute DDL; psycopg reads ``%`` as a placeholder even without parameters."""
    if connection.dialect.name == "postgresql":
        statement = statement.replace("%", "%%")
    connection.exec_driver_sql(statement)


def _columns(connection: Connection, table: str) -> tuple[list[str], list[str]]:
    inspector = inspect(connection)
    columns = [c["name"] for c in inspector.get_columns(table)]
    key = list(inspector.get_pk_constraint(table)["constrained_columns"])
    return columns, key


def is_replica(connection: Connection) -> bool:
    """True when the store holds replication cursors: it receives changes, it is not
    captured (its triggers would log what the replicator applies)."""
    if not inspect(connection).has_table(CURSORS):
        return False
    return connection.exec_driver_sql(f"SELECT 1 FROM {CURSORS} LIMIT 1").first() is not None


def installed(connection: Connection) -> dict[str, set[str]]:
    """Capture triggers present: table -> operations ("i", "u", "d")."""
    if connection.dialect.name == "postgresql":
        rows = connection.exec_driver_sql(
            "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE NOT t.tgisinternal AND starts_with(t.tgname, 'ct_capture_')"
        ).all()
    else:
        rows = connection.exec_driver_sql(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'"
            " AND name LIKE 'ct\\_capture\\_%' ESCAPE '\\'"
        ).all()
    found: dict[str, set[str]] = {}
    for name, table in rows:
        found.setdefault(str(table), set()).add(str(name)[-1])
    return found


def uninstall(connection: Connection, lineage: str) -> None:
    """Drop the capture triggers of *lineage*'s tables (and, when no lineage is left
    captured on PostgreSQL, the trigger functions)."""
    tables = set(captured_tables(lineage))
    postgres = connection.dialect.name == "postgresql"
    for table, ops in installed(connection).items():
        root = table if table in tables else _partition_root(connection, table)
        if root not in tables:
            continue
        for op in ops:
            name = _q(f"{PREFIX}{table}_{op}")
            _run(
                connection,
                f"DROP TRIGGER IF EXISTS {name} ON {_q(table)}"
                if postgres
                else f"DROP TRIGGER IF EXISTS {name}",
            )
    if postgres and not installed(connection):
        _run(connection, "DROP FUNCTION IF EXISTS ct_capture_rows() CASCADE")
        _run(connection, "DROP FUNCTION IF EXISTS ct_capture_truncate() CASCADE")
        _run(connection, "DROP FUNCTION IF EXISTS ct_capture_series() CASCADE")


def _partition_root(connection: Connection, table: str) -> str | None:
    if connection.dialect.name != "postgresql":
        return None
    root = connection.exec_driver_sql(
        "SELECT p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE c.relname = %(name)s",
        {"name": table},
    ).scalar()
    return None if root is None else str(root)


def install(connection: Connection, lineage: str) -> int:
    """(Re)create the capture triggers of every existing table of *lineage*; returns
    how many tables are captured. Nothing happens before schema 2.2.0 (no log table)
    or on a replica."""
    log = LOG_TABLES[lineage]
    inspector = inspect(connection)
    if not inspector.has_table(log):
        return 0
    uninstall(connection, lineage)
    if is_replica(connection):
        return 0
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        for statement in _PG_FUNCTIONS:
            _run(connection, statement)
    existing = set(inspector.get_table_names())
    count = 0
    for table in captured_tables(lineage):
        if table not in existing:
            continue
        if table == SERIES_TABLE:
            if not inspector.has_table(SERIES_LOG):
                continue
            statements = _pg_series(connection) if postgres else sqlite_series_triggers()
        else:
            columns, key = _columns(connection, table)
            statements = (_pg_rows if postgres else _sqlite_rows)(log, table, columns, key)
        for statement in statements:
            _run(connection, statement)
        count += 1
    return count


# -- SQLite: row triggers ----------------------------------------------------------


def _sqlite_value(ref: str) -> str:
    """A column value as exact JSON. A real becomes ``["r", text, m, k]`` with
    ``value == m * 2**k`` exactly (SQLite 3.40's printf misprints some extreme doubles
    at 17 digits, so the text is for people and ``m, k`` for the replay); infinities
    ``["r", "inf"]``; a blob ``["b", hex]``; anything else its JSON value."""
    scale = f"max(floor(log2(abs({ref}))) - 60, -1074)"
    real = (
        f"CASE WHEN {ref} = 0 THEN json_array('r', printf('%!.17g', {ref}))"
        f" WHEN abs({ref}) > 1.7976931348623157e308"
        f" THEN json_array('r', CASE WHEN {ref} > 0 THEN 'inf' ELSE '-inf' END)"
        f" ELSE json_array('r', printf('%!.17g', {ref}),"
        f" CAST({ref} / power(2, {scale}) AS INTEGER), CAST({scale} AS INTEGER)) END"
    )
    return (
        f"json(CASE typeof({ref}) WHEN 'real' THEN {real}"
        f" WHEN 'blob' THEN json_array('b', hex({ref})) ELSE json_quote({ref}) END)"
    )


def _sqlite_rows(log: str, table: str, columns: list[str], key: list[str]) -> list[str]:
    if len(columns) > 63:  # json_object takes at most 127 arguments
        raise ValueError(f"{table}: too many columns ({len(columns)}) for a row image")

    def key_of(row: str) -> str:
        return "json_array(" + ", ".join(f"{row}.{_q(c)}" for c in key) + ")"

    image = (
        "json_object("
        + ", ".join(f"{_lit(c)}, {_sqlite_value('NEW.' + _q(c))}" for c in columns)
        + ")"
    )
    insert = f"INSERT INTO {log} (table_name, op, row_key, row_image, changed_at)"
    moved = " OR ".join(f"OLD.{_q(c)} IS NOT NEW.{_q(c)}" for c in key)
    name = table
    return [
        f"CREATE TRIGGER {_q(PREFIX + name + '_i')} AFTER INSERT ON {_q(table)} BEGIN"
        f" {insert} VALUES ({_lit(table)}, 'I', {key_of('NEW')}, {image}, {SQLITE_NOW_MS});"
        " END",
        f"CREATE TRIGGER {_q(PREFIX + name + '_u')} AFTER UPDATE ON {_q(table)} BEGIN"
        f" {insert} SELECT {_lit(table)}, 'D', {key_of('OLD')}, NULL, {SQLITE_NOW_MS}"
        f" WHERE {moved};"
        f" {insert} VALUES ({_lit(table)}, 'U', {key_of('NEW')}, {image}, {SQLITE_NOW_MS});"
        " END",
        f"CREATE TRIGGER {_q(PREFIX + name + '_d')} AFTER DELETE ON {_q(table)} BEGIN"
        f" {insert} VALUES ({_lit(table)}, 'D', {key_of('OLD')}, NULL, {SQLITE_NOW_MS});"
        " END",
    ]


def sqlite_series_triggers() -> list[str]:
    """Row triggers of ``time_series`` on SQLite: a one-candle range per change."""
    insert = (
        f"INSERT INTO {SERIES_LOG} (symbol, frequency, exchange, first_ts, last_ts, changed_at)"
    )

    def values(row: str) -> str:
        ts = f'{row}."timestamp"'
        return f"({row}.symbol, {row}.frequency, {row}.exchange, {ts}, {ts}, {SQLITE_NOW_MS})"

    moved = (
        "OLD.symbol IS NOT NEW.symbol OR OLD.frequency IS NOT NEW.frequency OR"
        ' OLD.exchange IS NOT NEW.exchange OR OLD."timestamp" IS NOT NEW."timestamp"'
    )
    table = _q(SERIES_TABLE)
    return [
        f"CREATE TRIGGER {_q(PREFIX + SERIES_TABLE + '_i')} AFTER INSERT ON {table} BEGIN"
        f" {insert} VALUES {values('NEW')}; END",
        f"CREATE TRIGGER {_q(PREFIX + SERIES_TABLE + '_u')} AFTER UPDATE ON {table} BEGIN"
        f" {insert} SELECT {values('OLD')[1:-1]} WHERE {moved};"
        f" {insert} VALUES {values('NEW')}; END",
        f"CREATE TRIGGER {_q(PREFIX + SERIES_TABLE + '_d')} AFTER DELETE ON {table} BEGIN"
        f" {insert} VALUES {values('OLD')}; END",
    ]


@contextmanager
def series_batch(
    conn: sqlite3.Connection,
    symbol: str,
    frequency: str,
    exchange: str,
    first: int,
    last: int,
    spans: list[tuple[int, int]] | None = None,
) -> Iterator[None]:
    """Inside the caller's SQLite write transaction: write candles of one series in
    ``[first, last]`` without a log row per candle. The row triggers are dropped for
    the body and recreated before the transaction can commit (a kill rolls both back;
    other connections never see them missing), and one range is logged instead -- or
    one per run of *spans* (scattered corrections then re-copy only what changed). A
    store without capture (a replica, or before 2.2.0) is written as it is."""
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?"
        " AND name LIKE 'ct\\_capture\\_%' ESCAPE '\\' ORDER BY name",
        (SERIES_TABLE,),
    ).fetchall()
    for name, _sql in rows:
        conn.execute(f"DROP TRIGGER {_q(name)}")
    try:
        yield
        if rows:
            conn.executemany(
                f"INSERT INTO {SERIES_LOG} (symbol, frequency, exchange, first_ts, last_ts,"
                f" changed_at) VALUES (?, ?, ?, ?, ?, {SQLITE_NOW_MS})",
                [
                    (symbol, frequency, exchange, int(a), int(b))
                    for a, b in (spans or [(first, last)])
                ],
            )
    finally:
        for _name, sql in rows:
            conn.execute(sql)


# -- PostgreSQL: statement triggers with transition tables -------------------------

_PG_FUNCTIONS = (
    f"""CREATE OR REPLACE FUNCTION ct_capture_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_ARGV[0] = '{SERIES_LOG}' THEN
    INSERT INTO {SERIES_LOG} (symbol, frequency, exchange, first_ts, last_ts, changed_at, txid)
    VALUES ('{ALL_SERIES}', '', '', 0, 0, {_PG_NOW_MS}, {_PG_TXID});
  ELSE
    EXECUTE format('INSERT INTO %I (table_name, op, row_key, changed_at, txid)'
      ' VALUES (%L, ''{TRUNCATED_OP}'', ''[]'', {_PG_NOW_MS}, {_PG_TXID})',
      TG_ARGV[0], TG_ARGV[1]);
  END IF;
  RETURN NULL;
END $fn$""",
    f"""CREATE OR REPLACE FUNCTION ct_capture_rows() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  stamp text := '{_PG_NOW_MS}, {_PG_TXID}';
BEGIN
  IF TG_OP = 'INSERT' THEN
    EXECUTE format('INSERT INTO %I (table_name, op, row_key, changed_at, txid)'
      ' SELECT %L, ''I'', %s, %s FROM new_rows r', TG_ARGV[0], TG_ARGV[1], TG_ARGV[2], stamp);
  ELSIF TG_OP = 'DELETE' THEN
    EXECUTE format('INSERT INTO %I (table_name, op, row_key, changed_at, txid)'
      ' SELECT %L, ''D'', %s, %s FROM old_rows r', TG_ARGV[0], TG_ARGV[1], TG_ARGV[2], stamp);
  ELSE
    EXECUTE format('INSERT INTO %I (table_name, op, row_key, changed_at, txid)'
      ' SELECT %L, ''U'', k, %s FROM (SELECT %s AS k FROM new_rows r'
      ' UNION SELECT %s FROM old_rows r) keys',
      TG_ARGV[0], TG_ARGV[1], stamp, TG_ARGV[2], TG_ARGV[2]);
  END IF;
  RETURN NULL;
END $fn$""",
    f"""CREATE OR REPLACE FUNCTION ct_capture_series() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO {SERIES_LOG} (symbol, frequency, exchange, first_ts, last_ts, changed_at, txid)
    SELECT symbol, frequency, exchange, min("timestamp"), max("timestamp"),
           {_PG_NOW_MS}, {_PG_TXID} FROM new_rows GROUP BY 1, 2, 3;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO {SERIES_LOG} (symbol, frequency, exchange, first_ts, last_ts, changed_at, txid)
    SELECT symbol, frequency, exchange, min("timestamp"), max("timestamp"),
           {_PG_NOW_MS}, {_PG_TXID} FROM old_rows GROUP BY 1, 2, 3;
  ELSE
    INSERT INTO {SERIES_LOG} (symbol, frequency, exchange, first_ts, last_ts, changed_at, txid)
    SELECT symbol, frequency, exchange, min("timestamp"), max("timestamp"),
           {_PG_NOW_MS}, {_PG_TXID}
    FROM (SELECT symbol, frequency, exchange, "timestamp" FROM new_rows
          UNION ALL SELECT symbol, frequency, exchange, "timestamp" FROM old_rows) changed
    GROUP BY 1, 2, 3;
  END IF;
  RETURN NULL;
END $fn$""",
)


def _pg_triggers(
    table: str, function: str, args: str = "", truncate_args: str | None = None
) -> list[str]:
    statements = (
        [
            f"CREATE TRIGGER {_q(PREFIX + table + '_t')} AFTER TRUNCATE ON {_q(table)}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION ct_capture_truncate({truncate_args})"
        ]
        if truncate_args is not None
        else []
    )
    for op, event in _OPS.items():
        rows = "OLD TABLE AS old_rows" if op == "d" else "NEW TABLE AS new_rows"
        if op == "u":
            rows = "OLD TABLE AS old_rows NEW TABLE AS new_rows"
        statements.append(
            f"CREATE TRIGGER {_q(PREFIX + table + '_' + op)} AFTER {event} ON {_q(table)}"
            f" REFERENCING {rows} FOR EACH STATEMENT EXECUTE FUNCTION {function}({args})"
        )
    return statements


def _pg_rows(log: str, table: str, _columns: list[str], key: list[str]) -> list[str]:
    key_sql = "jsonb_build_array(" + ", ".join(f"r.{_q(c)}" for c in key) + ")::text"
    return _pg_triggers(
        table,
        "ct_capture_rows",
        ", ".join(map(_lit, (log, table, key_sql))),
        ", ".join(map(_lit, (log, table))),
    )


def partition_triggers(partition: str) -> list[str]:
    """Triggers of one ``time_series`` partition on PostgreSQL (a write addressed to
    the partition fires its own statement triggers, not the parent's)."""
    return _pg_triggers(partition, "ct_capture_series", truncate_args=_lit(SERIES_LOG))


def _pg_series(connection: Connection) -> list[str]:
    partitions = connection.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %(name)s ORDER BY 1",
        {"name": SERIES_TABLE},
    ).scalars()
    statements = _pg_triggers(SERIES_TABLE, "ct_capture_series", truncate_args=_lit(SERIES_LOG))
    for partition in partitions:
        statements += partition_triggers(str(partition))
    return statements
