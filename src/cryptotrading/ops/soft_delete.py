"""Soft-deleted rows: list them, bring one back, purge those deleted long ago.

Ten application tables keep deleted rows for the audit trail (``deleted_at``, and
from schema 2.3.0 ``deleted_by``): ``users``, ``api_credentials``, ``a2a_agents``,
``a2a_workflows``, ``trading_decisions``, ``ml_model_registry``,
``conversation_sessions``, ``memory_fragments``, ``code_files`` and ``issues``
(:func:`soft_delete_tables`). The library's lists and lookups skip them.

* :func:`restore_deleted` (``cryptotrading db restore-deleted TABLE ID``) clears the
  mark, and undoes what the domain's delete switched off with it: a user is active
  again (its API key stays revoked: issue a new one), an agent ``active``. A row whose
  parent is itself deleted (a fragment of a deleted user) is refused until the parent
  is restored; a removed exchange credential cannot come back (its encrypted secret
  was erased when it was removed: add it again).
* :func:`purge_deleted` (``db purge-deleted --older-than``; the ``retention`` job when
  ``retention_deleted_days`` is set) deletes rows deleted before the cutoff, children
  first, in batches. A row still referred to by another row that is not its own
  dependent data (an order of a user, an issue of a code file, a deleted credential of
  a user not yet purged) is kept and counted as ``kept``; dependent rows (``ON DELETE
  CASCADE`` from tables without soft deletes: an agent's messages, a session's
  messages) go with their parent.

Both run in the app store's transactions, so the change log captures them (a
restore is an UPDATE, a purge a DELETE) and the replica follows; each is recorded as
a ``monitoring_events`` row (``row_restored`` / ``rows_purged``) naming the actor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, ForeignKey, Table, and_, exists, func, insert, select, update

from cryptotrading.common.views import AsDict
from cryptotrading.db.actor import current_actor
from cryptotrading.db.session import translate_errors
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.models import APP_LINEAGE, MonitoringEvent, lineage_tables, metadata
from cryptotrading.ops.retention import delete_in_batches, vacuum_tables
from cryptotrading.stores import Stores

#: Columns a restore sets besides clearing the mark (what the domain's delete unset).
RESTORED_VALUES: dict[str, dict[str, Any]] = {
    "users": {"is_active": True},
    "a2a_agents": {"status": "active"},
}
#: Tables whose deleted rows cannot come back, and why.
NOT_RESTORABLE: dict[str, tuple[str, str]] = {
    "api_credentials": (
        "a removed exchange credential cannot be restored: its encrypted key and "
        "secret were erased when it was removed",
        "Add it again: `cryptotrading vault add --user USER --service SERVICE`.",
    ),
}
#: The column that names a row to a person, per table (first one present).
_LABELS = (
    "username", "agent_id", "workflow_id", "session_id", "model_name", "service_name",
    "file_path", "title", "symbol", "fragment_type",
)  # fmt: skip


@dataclass
class DeletedRow(AsDict):
    """One soft-deleted row: where, which, when and by whom."""

    table: str
    id: int
    label: str | None
    deleted_at: str | None
    deleted_by: str | None


@dataclass
class PurgeReport(AsDict):
    """Rows purged per table, rows kept because other rows still refer to them."""

    cutoff: str
    purged: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    #: Per table with kept rows: the references (``table.column``) holding them.
    kept_by: dict[str, list[str]] = field(default_factory=dict)
    vacuumed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.purged.values())


def soft_delete_tables() -> list[str]:
    """The application tables with soft deletes, parents before children."""
    return [t.name for t in lineage_tables(APP_LINEAGE) if "deleted_at" in t.c]


def _table(name: object) -> Table:
    names = soft_delete_tables()
    if not isinstance(name, str) or name not in names:
        shown = repr(name)[:60] if isinstance(name, str) else type(name).__name__
        raise ValidationError(
            f"{shown} is not a table with soft deletes",
            hint=f"Choose one of: {', '.join(names)}.",
        )
    return metadata.tables[name]


def _label_column(table: Table) -> Any:
    for name in _LABELS:
        if name in table.c:
            return table.c[name]
    return None


def _row(table: Table, values: Any) -> DeletedRow:
    label = _label_column(table)
    deleted_at = values["deleted_at"]
    return DeletedRow(
        table.name,
        int(values["id"]),
        None if label is None or values[label.name] is None else str(values[label.name]),
        deleted_at.isoformat() if deleted_at is not None else None,
        values["deleted_by"],
    )


def _columns(table: Table) -> list[Any]:
    label = _label_column(table)
    chosen = [table.c.id, table.c.deleted_at, table.c.deleted_by]
    return chosen if label is None else [*chosen, label]


def list_deleted(stores: Stores, table: str | None = None, *, limit: int = 100) -> list[DeletedRow]:
    """Soft-deleted rows (of *table*, or of every table), most recently deleted first,
    at most *limit* per table."""
    tables = [_table(table)] if table is not None else [_table(n) for n in soft_delete_tables()]
    rows: list[DeletedRow] = []
    with translate_errors(stores.app.name), stores.engine(stores.app).connect() as connection:
        for chosen in tables:
            query = (
                select(*_columns(chosen))
                .where(chosen.c.deleted_at.is_not(None))
                .order_by(chosen.c.deleted_at.desc(), chosen.c.id.desc())
                .limit(limit)
            )
            rows += [_row(chosen, values) for values in connection.execute(query).mappings()]
    return sorted(rows, key=lambda r: r.deleted_at or "", reverse=True)


def _deleted_parent(connection: Connection, table: Table, row: Any) -> str | None:
    """``"users 3"`` when *row* refers to a parent that is itself soft-deleted."""
    for key in table.foreign_keys:
        parent = key.column.table
        value = row[key.parent.name]
        if "deleted_at" not in parent.c or value is None:
            continue
        found = connection.execute(
            select(parent.c.id).where(key.column == value, parent.c.deleted_at.is_not(None))
        ).scalar()
        if found is not None:
            return f"{parent.name} {found}"
    return None


def _event(connection: Connection, event_type: str, message: str, details: dict[str, Any]) -> None:
    """An audit record of a restore or purge (``monitoring_events``, severity info)."""
    connection.execute(
        insert(MonitoringEvent),
        {
            "event_type": event_type,
            "severity": "info",
            "component": f"table:{details['table']}",
            "message": message,
            "details": details,
        },
    )


def restore_deleted(stores: Stores, table: str, row_id: int) -> DeletedRow:
    """Bring back soft-deleted row *row_id* of *table* (one transaction); returns the
    row as it was deleted (when, by whom)."""
    chosen = _table(table)
    if chosen.name in NOT_RESTORABLE:
        message, hint = NOT_RESTORABLE[chosen.name]
        raise ValidationError(message, hint=hint)
    if not isinstance(row_id, int) or isinstance(row_id, bool):
        raise ValidationError(f"row id must be an integer, got {type(row_id).__name__}")
    actor = current_actor()
    with translate_errors(stores.app.name), stores.engine(stores.app).begin() as connection:
        found = (
            connection.execute(select(chosen).where(chosen.c.id == row_id).with_for_update())
            .mappings()
            .first()
        )
        if found is None:
            raise NotFoundError(
                f"{chosen.name} has no row {row_id}",
                hint=f"List the deleted rows: `cryptotrading db list-deleted {chosen.name}`.",
            )
        if found["deleted_at"] is None:
            raise ValidationError(
                f"{chosen.name} row {row_id} is not deleted", hint="Nothing to restore."
            )
        parent = _deleted_parent(connection, chosen, found)
        if parent is not None:
            raise ValidationError(
                f"{chosen.name} row {row_id} belongs to {parent}, which is deleted too",
                hint=f"Restore it first: `cryptotrading db restore-deleted {parent}`.",
            )
        restored = _row(chosen, found)
        values: dict[str, Any] = {"deleted_at": None, "deleted_by": None}
        values.update(RESTORED_VALUES.get(chosen.name, {}))
        connection.execute(update(chosen).where(chosen.c.id == row_id).values(**values))
        _event(
            connection,
            "row_restored",
            f"{actor} restored {chosen.name} row {row_id}",
            {
                "table": chosen.name,
                "id": row_id,
                "by": actor,
                "deleted_at": restored.deleted_at,
                "deleted_by": restored.deleted_by,
            },
        )
    return restored


def _blocking(table: Table) -> list[ForeignKey]:
    """Foreign keys to *table* that keep a row from being purged: every reference but
    ``ON DELETE CASCADE`` ones from tables without soft deletes (dependent data)."""
    keys = []
    for other in metadata.sorted_tables:
        for key in other.foreign_keys:
            if key.column.table is not table or other is table:
                continue
            dependent = (key.ondelete or "").upper() == "CASCADE" and "deleted_at" not in other.c
            if not dependent:
                keys.append(key)
    return keys


def _purgeable(table: Table, cutoff: datetime) -> Any:
    condition = and_(table.c.deleted_at.is_not(None), table.c.deleted_at < cutoff)
    for key in _blocking(table):
        condition = and_(condition, ~exists().where(key.parent == key.column))
    return condition


def _blockers(connection: Connection, table: Table, cutoff: datetime) -> list[str]:
    """``table.column`` of every reference that still holds rows of *table* deleted
    before *cutoff*."""
    expired = and_(table.c.deleted_at.is_not(None), table.c.deleted_at < cutoff)
    found = []
    for key in _blocking(table):
        query = select(table.c.id).where(expired, exists().where(key.parent == key.column))
        if connection.execute(query.limit(1)).first() is not None:
            found.append(f"{key.parent.table.name}.{key.parent.name}")
    return found


def purge_deleted(
    stores: Stores,
    older_than: timedelta,
    *,
    tables: list[str] | None = None,
    now: datetime | None = None,
) -> PurgeReport:
    """Delete rows soft-deleted more than *older_than* ago (of *tables*, or of every
    soft-delete table), children before parents, in batches."""
    if older_than <= timedelta(0):
        raise ValidationError("the age must be positive", hint="Give e.g. --older-than 365d.")
    chosen = [_table(name) for name in (tables or soft_delete_tables())]
    cutoff = (now or datetime.now(UTC)) - older_than
    report = PurgeReport(cutoff.isoformat())
    started = time.perf_counter()
    engine = stores.engine(stores.app)
    order = [t for t in reversed(metadata.sorted_tables) if t in chosen]  # children first
    with translate_errors(stores.app.name):
        for table in order:
            rows, _ = delete_in_batches(
                engine, table, _purgeable(table, cutoff), stores.settings.retention_batch_rows
            )
            report.purged[table.name] = rows
            with engine.connect() as connection:
                left = connection.execute(
                    select(func.count()).where(
                        table.c.deleted_at.is_not(None), table.c.deleted_at < cutoff
                    )
                ).scalar()
                if left:
                    report.kept[table.name] = int(left)
                    report.kept_by[table.name] = _blockers(connection, table, cutoff)
        if report.rows:
            actor = current_actor()
            with engine.begin() as connection:
                for name, rows in report.purged.items():
                    if rows:
                        _event(
                            connection,
                            "rows_purged",
                            f"{actor} purged {rows} {name} rows deleted before {cutoff:%Y-%m-%d}",
                            {"table": name, "rows": rows, "by": actor, "cutoff": report.cutoff},
                        )
        if engine.dialect.name == "postgresql":
            report.vacuumed = [name for name, rows in report.purged.items() if rows]
            vacuum_tables(engine, report.vacuumed)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def purge(
    stores: Stores, older_than: str | None = None, *, tables: list[str] | None = None
) -> PurgeReport:
    """:func:`purge_deleted` with an age such as ``365d`` (``m``, ``h``, ``d``, ``w``), by
    default the setting ``retention_deleted_days`` (``db purge-deleted``)."""
    from cryptotrading.market.archive import parse_age

    if older_than is not None:
        age = parse_age(older_than)
    elif stores.settings.retention_deleted_days > 0:
        age = timedelta(days=stores.settings.retention_deleted_days)
    else:
        raise ValidationError(
            "no age given and no retention of deleted rows configured",
            hint="Pass --older-than (e.g. 365d) or set CRYPTOTRADING_RETENTION_DELETED_DAYS.",
        )
    return purge_deleted(stores, age, tables=tables)
