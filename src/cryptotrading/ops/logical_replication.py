"""PostgreSQL-to-PostgreSQL replication with PostgreSQL's own logical replication.

When a lineage's source store and the replica store are both PostgreSQL, ``replicate
setup`` (:func:`setup`) publishes the lineage's replicated tables on the source
(``CREATE PUBLICATION cryptotrading_<lineage>``, ``publish_via_partition_root``) and
subscribes the replica to it (``CREATE SUBSCRIPTION cryptotrading_<lineage>``): one
publication and one subscription per lineage, so in layout ``three`` the application
store and the market store each feed the replica through their own slot. The server
then streams every committed insert, update, delete and truncate -- whoever wrote it --
and the change-log replication (:mod:`cryptotrading.ops.replication`) skips the lineages
for which :func:`is_active` is true.

Logical replication carries no DDL: the replica must be at the source's schema version
before the source moves on (upgrade the replica first, then the source); :func:`setup`
refuses to subscribe when versions or columns differ. Sequences are not replicated
either (see the operations docs for what that means on failover).

The replication slot lives on the source cluster and is named after both ends
(``cryptotrading_<lineage>_<digest>``), so several replicas and several source
databases of one cluster never share a slot. ``setup(drop=True)`` removes the
subscription, its slot and (when no other replica of ours uses it) the publication:
an abandoned slot keeps WAL on the source forever and a database with a slot cannot
be dropped.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from cryptotrading.common.views import AsDict
from cryptotrading.db.session import translate, translate_errors
from cryptotrading.errors import ConfigurationError, SchemaVersionError, StoreUnavailableError
from cryptotrading.market import postgres_io
from cryptotrading.models import APP_LINEAGE, MARKET_LINEAGE
from cryptotrading.ops.replicated import replicated_tables
from cryptotrading.stores import Store, Stores

LINEAGES = (APP_LINEAGE, MARKET_LINEAGE)
NAME_PREFIX = "cryptotrading"
PUBLISH = "insert, update, delete, truncate"

#: ``pg_subscription_rel.srsubstate`` codes.
SYNC_STATES = {
    "i": "init",
    "d": "copying",
    "f": "copied",
    "s": "synchronized",
    "r": "ready",
}

NOT_APPLICABLE = (
    "logical replication needs PostgreSQL on both ends; {pair} -- the change-log "
    "replication (`cryptotrading replicate`) serves this replica and needs no setup"
)
UPGRADE_HINT = (
    "Logical replication carries no schema changes: upgrade the replica first "
    "(`cryptotrading db upgrade` with CRYPTOTRADING_APP_URL/MARKET_URL pointing at the "
    "replica database), then the source, then run `cryptotrading replicate setup` again."
)


# -- the pairs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """One lineage's source store, the replica store and the names that join them."""

    lineage: str
    source: Store
    replica: Store

    @property
    def publication(self) -> str:
        return f"{NAME_PREFIX}_{self.lineage}"

    @property
    def subscription(self) -> str:
        return f"{NAME_PREFIX}_{self.lineage}"

    @property
    def slot(self) -> str:
        """Unique on the source cluster: derived from both ends' host, port and database."""
        ends = f"{_address(self.source.url)} -> {_address(self.replica.url)}"
        digest = hashlib.sha256(ends.encode()).hexdigest()[:12]
        return f"{NAME_PREFIX}_{self.lineage}_{digest}"

    @property
    def tables(self) -> list[str]:
        return [table.name for table in replicated_tables(self.lineage)]


def _address(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.host or ''}:{parsed.port or 5432}/{parsed.database or ''}"


def _replica(stores: Stores) -> Store | None:
    return next((store for store in stores if store.is_replica), None)


def _why_not(stores: Stores) -> str | None:
    """Why logical replication does not apply to these stores (None: it does)."""
    replica = _replica(stores)
    if replica is None:
        return f"layout {stores.settings.layout!r} has no replica store"
    ends = [(lineage, stores.primary_for(lineage)) for lineage in LINEAGES]
    for lineage, source in ends:
        if source.backend != "postgresql" or replica.backend != "postgresql":
            return NOT_APPLICABLE.format(
                pair=f"the {lineage} lineage goes from {source.backend} store {source.name!r} "
                f"to {replica.backend} store 'replica'"
            )
    return None


def pairs(stores: Stores) -> list[Pair]:
    """The lineage pairs logical replication would serve ([] unless both ends of every
    lineage are PostgreSQL)."""
    replica = _replica(stores)
    if replica is None or _why_not(stores) is not None:
        return []
    return [Pair(lineage, stores.primary_for(lineage), replica) for lineage in LINEAGES]


# -- connections ----------------------------------------------------------------------


@contextmanager
def _autocommit(engine: Engine, where: str) -> Iterator[Connection]:
    """A connection outside any transaction block (CREATE/DROP SUBSCRIPTION need it)."""
    with translate_errors(where), engine.connect() as connection:
        yield connection.execution_options(isolation_level="AUTOCOMMIT")


def _scalar(connection: Connection, query: str, *params: Any) -> Any:
    return connection.exec_driver_sql(query, params if params else ()).scalar()


def _rows(connection: Connection, query: str, *params: Any) -> list[Any]:
    return list(connection.exec_driver_sql(query, params if params else ()).all())


def _quote(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def conninfo(url: str) -> str:
    """The libpq connection string the replica's server uses to reach the source: host,
    port, database, user (and password, sslmode) of the source URL. It is stored in the
    replica's ``pg_subscription`` (readable by superusers only); never print it."""
    parsed = make_url(url)
    parts = {
        "host": parsed.host,
        "port": str(parsed.port) if parsed.port else None,
        "dbname": parsed.database,
        "user": parsed.username,
        "password": parsed.password,
        "sslmode": parsed.query.get("sslmode"),
    }
    return " ".join(f"{key}={_conninfo_value(str(value))}" for key, value in parts.items() if value)


def _conninfo_value(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _source_where(pair: Pair) -> str:
    return f"source store {pair.source.name!r} ({pair.source.display_url})"


def _replica_where(pair: Pair) -> str:
    return f"replica store ({pair.replica.display_url})"


# -- checks ---------------------------------------------------------------------------


_COLUMNS_SQL = (
    "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)"
    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    " WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(%s)"
    " AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped"
    " ORDER BY c.relname, a.attnum"
)


def _columns(connection: Connection, tables: Sequence[str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for table, column, kind in _rows(connection, _COLUMNS_SQL, list(tables)):
        found.setdefault(table, {})[column] = kind
    return found


def _version(connection: Connection, lineage: str) -> str | None:
    table = f"alembic_version_{lineage}"
    if _scalar(connection, "SELECT to_regclass(%s) IS NOT NULL", table) is not True:
        return None
    value = _scalar(connection, f"SELECT max(version_num) FROM {_quote(connection, table)}")
    return None if value is None else str(value)


def _first_difference(
    tables: Sequence[str], source: dict[str, dict[str, str]], replica: dict[str, dict[str, str]]
) -> str | None:
    for table in tables:
        theirs, ours = source.get(table), replica.get(table)
        if theirs is None:
            return f"table {table!r} is missing on the source"
        if ours is None:
            return f"table {table!r} is missing on the replica"
        for column, kind in theirs.items():
            if column not in ours:
                return f"column {table}.{column} ({kind}) is missing on the replica"
            if ours[column] != kind:
                return (
                    f"column {table}.{column} is {kind} on the source but {ours[column]} "
                    "on the replica"
                )
        for column, kind in ours.items():
            if column not in theirs:
                return f"column {table}.{column} ({kind}) is on the replica but not the source"
    return None


def _identity(connection: Connection, url: str) -> tuple[str, str]:
    """(cluster, database) of a connection: the cluster's system identifier where the
    user may read it, else the address of the URL."""
    database = str(_scalar(connection, "SELECT current_database()"))
    if _scalar(connection, "SELECT has_function_privilege('pg_control_system()', 'execute')"):
        return str(
            _scalar(connection, "SELECT system_identifier FROM pg_control_system()")
        ), database
    return _address(url).rsplit("/", 1)[0], database


def check(stores: Stores) -> list[Pair]:
    """Refuse (named error + hint) unless logical replication can start: PostgreSQL on
    both ends, distinct databases, ``wal_level=logical`` and replication rights on the
    source, a superuser on the replica, and per lineage the same schema version and the
    same columns in every replicated table. Writes nothing."""
    found = pairs(stores)
    for pair in found:
        with _autocommit(stores.engine(pair.source), _source_where(pair)) as source:
            source_id = _identity(source, pair.source.url)
            wal_level = _scalar(source, "SHOW wal_level")
            if wal_level != "logical":
                raise ConfigurationError(
                    f"{_source_where(pair)} runs with wal_level={wal_level}; logical "
                    "replication needs wal_level=logical",
                    hint="On the source server run `ALTER SYSTEM SET wal_level = logical` "
                    "and restart it (e.g. `pg_ctlcluster 15 main restart`).",
                )
            if not _scalar(
                source,
                "SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user",
            ):
                raise ConfigurationError(
                    f"the user of {_source_where(pair)} may not replicate",
                    hint="Grant it the right on the source: ALTER ROLE <user> REPLICATION.",
                )
            source_version = _version(source, pair.lineage)
            source_columns = _columns(source, pair.tables)
        with _autocommit(stores.engine(pair.replica), _replica_where(pair)) as replica:
            if _identity(replica, pair.replica.url) == source_id:
                raise ConfigurationError(
                    f"the replica store is the {pair.source.name!r} store itself "
                    f"({pair.replica.display_url})",
                    hint="Point CRYPTOTRADING_REPLICA_URL at another database.",
                )
            if not _scalar(replica, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
                raise ConfigurationError(
                    f"the user of the {_replica_where(pair)} is not a superuser; "
                    "PostgreSQL 15 lets only superusers create subscriptions",
                    hint="Connect to the replica as a superuser (CRYPTOTRADING_REPLICA_URL).",
                )
            replica_version = _version(replica, pair.lineage)
            replica_columns = _columns(replica, pair.tables)
        if replica_version is None:
            raise SchemaVersionError(
                f"the {_replica_where(pair)} has no schema of lineage {pair.lineage!r}",
                hint=UPGRADE_HINT,
            )
        if source_version != replica_version:
            raise SchemaVersionError(
                f"lineage {pair.lineage!r} is at schema version {source_version or 'none'} on "
                f"the source but {replica_version} on the replica",
                hint=UPGRADE_HINT,
            )
        difference = _first_difference(pair.tables, source_columns, replica_columns)
        if difference is not None:
            raise SchemaVersionError(
                f"the replica's schema differs from the source ({pair.lineage} lineage): "
                f"{difference}",
                hint=UPGRADE_HINT,
            )
    return found


# -- setup ----------------------------------------------------------------------------


@dataclass
class LineageSetup(AsDict):
    """What :func:`setup` did for one lineage."""

    lineage: str
    source: str
    replica: str
    publication: str
    subscription: str
    slot: str
    tables: int
    #: created | updated | unchanged (setup); dropped | absent (drop)
    action: str
    replica_emptied: bool = False
    partitions_created: list[str] = field(default_factory=list)
    #: a slot left on the source (its server was unreachable while dropping)
    slot_left: bool = False


@dataclass
class SetupResult(AsDict):
    """The answer of ``replicate setup``."""

    applicable: bool
    message: str
    lineages: list[LineageSetup] = field(default_factory=list)


def setup(stores: Stores, *, drop: bool = False) -> SetupResult:
    """Create (or with *drop* remove) the publications, slots and subscriptions that
    replicate each lineage to a PostgreSQL replica. Idempotent: a second run leaves an
    existing subscription alone (re-enabling it, adding tables a newer schema publishes,
    creating the replica's missing monthly ``time_series`` partitions).

    A new subscription empties the replica's copies of the lineage's tables first; the
    server then copies every table (in the background: see :func:`status`) and streams
    the changes committed after the slot was created."""
    if _replica(stores) is None:
        raise ConfigurationError(
            f"layout {stores.settings.layout!r} has no replica store",
            hint="Use layout 'three' or set CRYPTOTRADING_REPLICA_URL to the replica database.",
        )
    reason = _why_not(stores)
    if reason is not None:
        return SetupResult(applicable=False, message=reason)
    if drop:
        done = [_drop(stores, pair) for pair in pairs(stores)]
        return SetupResult(
            applicable=True,
            message="logical replication removed (subscriptions, slots, publications)",
            lineages=done,
        )
    done = [_create(stores, pair) for pair in check(stores)]
    return SetupResult(
        applicable=True,
        message="logical replication set up; the initial copy runs in the background "
        "(`cryptotrading replicate status` shows each table's sync state)",
        lineages=done,
    )


def _describe(pair: Pair, action: str) -> LineageSetup:
    return LineageSetup(
        lineage=pair.lineage,
        source=pair.source.display_url,
        replica=pair.replica.display_url,
        publication=pair.publication,
        subscription=pair.subscription,
        slot=pair.slot,
        tables=len(pair.tables),
        action=action,
    )


def _subscription(connection: Connection, name: str) -> tuple[bool, str | None] | None:
    """(enabled, slot name) of subscription *name* in the current database, or None."""
    rows = _rows(
        connection,
        "SELECT subenabled, subslotname FROM pg_subscription WHERE subname = %s"
        " AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        name,
    )
    return (bool(rows[0][0]), rows[0][1]) if rows else None


def _publish(connection: Connection, pair: Pair) -> bool:
    """Create or correct the publication on the source; True when it changed."""
    tables = ", ".join(_quote(connection, name) for name in pair.tables)
    options = f"publish = '{PUBLISH}', publish_via_partition_root = true"
    name = _quote(connection, pair.publication)
    viaroot = _rows(
        connection, "SELECT pubviaroot FROM pg_publication WHERE pubname = %s", pair.publication
    )
    if not viaroot:
        connection.exec_driver_sql(f"CREATE PUBLICATION {name} FOR TABLE {tables} WITH ({options})")
        return True
    published = {
        row[0]
        for row in _rows(
            connection,
            "SELECT tablename FROM pg_publication_tables WHERE pubname = %s"
            " AND schemaname = current_schema()",
            pair.publication,
        )
    }
    if viaroot[0][0] and published == set(pair.tables):
        return False
    connection.exec_driver_sql(f"ALTER PUBLICATION {name} SET TABLE {tables}")
    connection.exec_driver_sql(f"ALTER PUBLICATION {name} SET ({options})")
    return True


def _create(stores: Stores, pair: Pair) -> LineageSetup:
    result = _describe(pair, "unchanged")
    source_engine, replica_engine = stores.engine(pair.source), stores.engine(pair.replica)
    with _autocommit(source_engine, _source_where(pair)) as source:
        if _publish(source, pair):
            result.action = "updated"
    with _autocommit(replica_engine, _replica_where(pair)) as replica:
        existing = _subscription(replica, pair.subscription)
    if existing is not None:
        enabled, slot = existing
        if slot != pair.slot:
            raise ConfigurationError(
                f"the replica's subscription {pair.subscription} follows another source "
                f"(slot {slot}, expected {pair.slot} for {pair.source.display_url})",
                hint="Remove it with `cryptotrading replicate setup --drop` under the old "
                "settings, then run `replicate setup` again.",
            )
        with _autocommit(source_engine, _source_where(pair)) as source:
            if not _rows(
                source, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", pair.slot
            ):
                raise ConfigurationError(
                    f"the replica's subscription {pair.subscription} uses slot {pair.slot}, "
                    "which the source no longer has (dropped, or the source was restored): "
                    "changes since then are lost to the replica",
                    hint="Run `cryptotrading replicate setup --drop`, then `replicate setup` "
                    "(the replica is copied afresh).",
                )
        if pair.lineage == MARKET_LINEAGE:
            result.partitions_created = _sync_partitions(stores, pair)
        with _autocommit(replica_engine, _replica_where(pair)) as replica:
            subscription = _quote(replica, pair.subscription)
            if not enabled:
                replica.exec_driver_sql(f"ALTER SUBSCRIPTION {subscription} ENABLE")
            before = _subscribed_tables(replica, pair.subscription)
            replica.exec_driver_sql(
                f"ALTER SUBSCRIPTION {subscription} REFRESH PUBLICATION WITH (copy_data = true)"
            )
            changed = _subscribed_tables(replica, pair.subscription) != before
        if not enabled or changed or result.partitions_created:
            result.action = "updated"
        return result
    _subscribe(stores, pair)
    result.action = "created"
    result.replica_emptied = True
    if pair.lineage == MARKET_LINEAGE:
        result.partitions_created = _sync_partitions(stores, pair)
    with _autocommit(replica_engine, _replica_where(pair)) as replica:
        replica.exec_driver_sql(f"ALTER SUBSCRIPTION {_quote(replica, pair.subscription)} ENABLE")
    return result


def _subscribed_tables(connection: Connection, subscription: str) -> set[str]:
    return {row[0] for row in _rows(connection, _REL_STATES_SQL, subscription)}


def _subscribe(stores: Stores, pair: Pair) -> None:
    """A fresh slot on the source, then a disabled subscription using it (so a wrong
    connection string fails before anything on the replica changes), then the
    replica's tables emptied for the initial copy."""
    with _autocommit(stores.engine(pair.source), _source_where(pair)) as source:
        slot = _rows(
            source, "SELECT active FROM pg_replication_slots WHERE slot_name = %s", pair.slot
        )
        if slot and slot[0][0]:
            raise ConfigurationError(
                f"replication slot {pair.slot} on the source is in use by another subscriber",
                hint="Find it in pg_stat_replication on the source; drop that subscription "
                "before setting this replica up.",
            )
        if slot:  # left over from a replica dropped without `replicate setup --drop`
            source.exec_driver_sql("SELECT pg_drop_replication_slot(%s)", (pair.slot,))
        source.exec_driver_sql(
            "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (pair.slot,)
        )
    replica_engine = stores.engine(pair.replica)
    try:
        with replica_engine.connect() as connection:
            replica = connection.execution_options(isolation_level="AUTOCOMMIT")
            replica.exec_driver_sql(
                f"CREATE SUBSCRIPTION {_quote(replica, pair.subscription)}"
                f" CONNECTION {_literal(conninfo(pair.source.url))}"
                f" PUBLICATION {_quote(replica, pair.publication)}"
                f" WITH (create_slot = false, slot_name = {_literal(pair.slot)},"
                " enabled = false, copy_data = true)"
            )
    except DBAPIError as exc:
        _drop_slot(stores, pair, wait=0)
        error = translate(exc, _replica_where(pair))
        raise StoreUnavailableError(
            f"the replica's server could not subscribe to the source: {error.message}",
            hint="The replica's PostgreSQL server connects to the source itself, with host, "
            "port, database and user of the source URL: use an address and credentials "
            "that work from the replica's machine (pg_hba.conf, .pgpass on the replica).",
        ) from exc
    with _autocommit(replica_engine, _replica_where(pair)) as replica:
        tables = ", ".join(_quote(replica, name) for name in pair.tables)
        replica.exec_driver_sql(f"TRUNCATE {tables}")


_MONTH = re.compile(r"time_series_p(\d{4})(\d{2})")


def _sync_partitions(stores: Stores, pair: Pair) -> list[str]:
    """Create on the replica the monthly ``time_series`` partitions the source has (and
    its DEFAULT partition if it lacks one); returns the names created. Rows of months
    the replica has no partition for land in its DEFAULT partition meanwhile."""
    with _raw(stores.engine(pair.source), _source_where(pair)) as conn:
        names = postgres_io.partitions(conn)
    months = sorted(
        np.datetime64(f"{match[1]}-{match[2]}", "M")
        for name in names
        if (match := _MONTH.fullmatch(name))
    )
    stamps = np.array(months, dtype="datetime64[M]").astype("datetime64[ms]").astype(np.int64)
    with _raw(stores.engine(pair.replica), _replica_where(pair)) as conn:
        default = conn.execute(
            "SELECT partdefid FROM pg_partitioned_table"
            " WHERE partrelid = to_regclass('time_series')"
        ).fetchone()
        created = []
        if default is not None and not default[0]:
            conn.execute("CREATE TABLE time_series_default PARTITION OF time_series DEFAULT")
            created.append("time_series_default")
    with _raw(stores.engine(pair.replica), _replica_where(pair)) as conn:
        created += postgres_io.ensure_partitions(conn, stamps)
    return created


@contextmanager
def _raw(engine: Engine, where: str) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection in one transaction (committed on success)."""
    with translate_errors(where):
        pooled = engine.raw_connection()
        try:
            conn: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        except psycopg.Error as exc:
            wrapped = DBAPIError.instance(None, None, exc, psycopg.Error)
            assert isinstance(wrapped, DBAPIError)
            raise translate(wrapped, where) from exc
        finally:
            pooled.close()


# -- drop -----------------------------------------------------------------------------


def _drop(stores: Stores, pair: Pair) -> LineageSetup:
    result = _describe(pair, "absent")
    with _autocommit(stores.engine(pair.replica), _replica_where(pair)) as replica:
        if _subscription(replica, pair.subscription) is not None:
            result.action = "dropped"
            name = _quote(replica, pair.subscription)
            try:  # drops the slot on the source too
                replica.exec_driver_sql(f"DROP SUBSCRIPTION {name}")
            except DBAPIError:  # the source is unreachable: keep its slot, drop ours
                replica.exec_driver_sql(f"ALTER SUBSCRIPTION {name} DISABLE")
                replica.exec_driver_sql(f"ALTER SUBSCRIPTION {name} SET (slot_name = NONE)")
                replica.exec_driver_sql(f"DROP SUBSCRIPTION {name}")
    try:
        if _drop_slot(stores, pair, wait=10.0):
            result.action = "dropped"
        with _autocommit(stores.engine(pair.source), _source_where(pair)) as source:
            others = _scalar(
                source,
                "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"
                " AND slot_name LIKE %s AND slot_name <> %s",
                f"{NAME_PREFIX}\\_{pair.lineage}\\_%",
                pair.slot,
            )
            exists = _scalar(
                source, "SELECT count(*) FROM pg_publication WHERE pubname = %s", pair.publication
            )
            if exists and not others:
                source.exec_driver_sql(f"DROP PUBLICATION {_quote(source, pair.publication)}")
                result.action = "dropped"
    except StoreUnavailableError:
        result.slot_left = True
    return result


def _drop_slot(stores: Stores, pair: Pair, *, wait: float) -> bool:
    """Drop our slot on the source (waiting up to *wait* s for its walsender to stop);
    True when there was one."""
    deadline = time.monotonic() + wait
    with _autocommit(stores.engine(pair.source), _source_where(pair)) as source:
        while True:
            rows = _rows(
                source,
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s",
                pair.slot,
            )
            if not rows:
                return False
            if rows[0][0] is None:
                source.exec_driver_sql("SELECT pg_drop_replication_slot(%s)", (pair.slot,))
                return True
            if time.monotonic() >= deadline:
                source.exec_driver_sql("SELECT pg_terminate_backend(%s)", (rows[0][0],))
                deadline = time.monotonic() + 5.0
            time.sleep(0.1)


# -- status ---------------------------------------------------------------------------


_REL_STATES_SQL = (
    "SELECT c.relname, r.srsubstate FROM pg_subscription_rel r"
    " JOIN pg_subscription s ON s.oid = r.srsubid JOIN pg_class c ON c.oid = r.srrelid"
    " WHERE s.subname = %s"
    " AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " ORDER BY c.relname"
)

_WORKER_SQL = (
    "SELECT st.pid, st.received_lsn::text, st.latest_end_lsn::text, st.last_msg_receipt_time,"
    " st.latest_end_time FROM pg_stat_subscription st JOIN pg_subscription s ON s.oid = st.subid"
    " WHERE s.subname = %s AND st.relid IS NULL"
    " AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
)

_SLOT_SQL = (
    "SELECT active, confirmed_flush_lsn::text, pg_current_wal_lsn()::text,"
    " pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint"
    " FROM pg_replication_slots WHERE slot_name = %s"
)


@dataclass
class SubscriptionStatus(AsDict):
    """One lineage's logical replication, as the two servers report it."""

    lineage: str
    source: str
    replica: str
    subscription: str
    publication: str
    slot: str
    enabled: bool
    #: table -> sync state (init, copying, copied, synchronized, ready)
    tables: dict[str, str]
    tables_ready: int
    tables_total: int
    #: the apply worker (None: not running -- disabled, or restarting after an error)
    worker_pid: int | None
    #: last WAL position received from the source (pg_stat_subscription.received_lsn)
    received_lsn: str | None
    #: last position reported back to the source (pg_stat_subscription.latest_end_lsn)
    reported_lsn: str | None
    #: position the source knows is applied and flushed (the slot's confirmed_flush_lsn)
    flushed_lsn: str | None
    #: the source's current WAL position
    source_lsn: str | None
    #: WAL bytes the replica has not confirmed (source's current LSN - confirmed_flush_lsn)
    lag_bytes: int | None
    slot_active: bool
    last_message_at: datetime | None
    last_reported_at: datetime | None

    @property
    def synced(self) -> bool:
        return self.tables_total > 0 and self.tables_ready == self.tables_total


def is_active(stores: Stores, lineage: str) -> bool:
    """True when *lineage* is replicated by a PostgreSQL subscription on the replica
    (enabled or paused): the change-log replication leaves its tables alone."""
    replica = _replica(stores)
    if replica is None or replica.backend != "postgresql":
        return False
    if stores.primary_for(lineage).backend != "postgresql":
        return False
    pair = Pair(lineage, stores.primary_for(lineage), replica)
    with _autocommit(stores.engine(replica), _replica_where(pair)) as connection:
        return _subscription(connection, pair.subscription) is not None


def status(stores: Stores) -> list[SubscriptionStatus]:
    """One row per lineage that has a subscription on the replica ([] otherwise)."""
    found = []
    for pair in pairs(stores):
        with _autocommit(stores.engine(pair.replica), _replica_where(pair)) as replica:
            subscription = _subscription(replica, pair.subscription)
            if subscription is None:
                continue
            states = {
                name: SYNC_STATES.get(code, code)
                for name, code in _rows(replica, _REL_STATES_SQL, pair.subscription)
            }
            worker = _rows(replica, _WORKER_SQL, pair.subscription)
        pid, received, reported, message_at, reported_at = (
            worker[0] if worker else (None, None, None, None, None)
        )
        with _autocommit(stores.engine(pair.source), _source_where(pair)) as source:
            slot = _rows(source, _SLOT_SQL, pair.slot)
        active, flushed, current, lag = slot[0] if slot else (False, None, None, None)
        found.append(
            SubscriptionStatus(
                lineage=pair.lineage,
                source=pair.source.display_url,
                replica=pair.replica.display_url,
                subscription=pair.subscription,
                publication=pair.publication,
                slot=pair.slot,
                enabled=subscription[0],
                tables=states,
                tables_ready=sum(state == "ready" for state in states.values()),
                tables_total=len(states),
                worker_pid=pid,
                received_lsn=received,
                reported_lsn=reported,
                flushed_lsn=flushed,
                source_lsn=current,
                lag_bytes=None if lag is None else int(lag),
                slot_active=bool(active),
                last_message_at=message_at,
                last_reported_at=reported_at,
            )
        )
    return found


def wait_caught_up(stores: Stores, timeout: float = 60.0, *, poll: float = 0.05) -> bool:
    """Wait until every subscription has copied all its tables and applied everything
    its source committed before this call (the slot's ``confirmed_flush_lsn`` reached
    the source's WAL position taken at the start). True when caught up, False when
    *timeout* seconds passed first (or a lineage has no subscription)."""
    deadline = time.monotonic() + timeout
    active = pairs(stores)
    if not active or not all(is_active(stores, pair.lineage) for pair in active):
        return False
    targets: dict[str, str] = {}
    for pair in active:
        if pair.source.url not in targets:
            with _autocommit(stores.engine(pair.source), _source_where(pair)) as source:
                targets[pair.source.url] = str(_scalar(source, "SELECT pg_current_wal_lsn()"))
    waiting = list(active)
    while waiting:
        pair = waiting[0]
        if _caught_up(stores, pair, targets[pair.source.url]):
            waiting.pop(0)
            continue
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def _caught_up(stores: Stores, pair: Pair, target: str) -> bool:
    with _autocommit(stores.engine(pair.replica), _replica_where(pair)) as replica:
        if _subscription(replica, pair.subscription) is None:
            return False
        states = _rows(replica, _REL_STATES_SQL, pair.subscription)
    if not states or any(code != "r" for _name, code in states):
        return False
    with _autocommit(stores.engine(pair.source), _source_where(pair)) as source:
        done = _scalar(
            source,
            "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots"
            " WHERE slot_name = %s",
            target,
            pair.slot,
        )
    return bool(done)
