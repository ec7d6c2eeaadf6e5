"""``db check``: integrity, foreign keys, schema version and model drift per store, and
the candle archive's partitions against their manifests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, exists, func, select

from cryptotrading import migrations
from cryptotrading.common.views import AsDict
from cryptotrading.db.engine import READ_ONLY
from cryptotrading.db.session import translate_errors
from cryptotrading.market.archive import verify_archive
from cryptotrading.models import lineage_tables, metadata
from cryptotrading.stores import Store, Stores


@dataclass(frozen=True)
class CheckResult(AsDict):
    """Outcome of one check on one store; ``detail`` explains a failure."""

    store: str
    check: str
    ok: bool
    detail: str = ""


def check_all(stores: Stores) -> list[CheckResult]:
    """Run every check on every store, and on the candle archive when there is one.
    Never raises for a failed check: it reports."""
    results: list[CheckResult] = []
    for store in stores:
        results.extend(check_store(stores, store))
    archive_dir = stores.settings.data_dir / "archive"
    if archive_dir.is_dir():
        results.append(check_archive(archive_dir))
    return results


def check_archive(archive_dir: Path) -> CheckResult:
    """Every Parquet partition of the candle archive against its manifest."""
    verified = verify_archive(archive_dir)
    bad = [entry for entry in verified if not entry["ok"]]
    detail = "; ".join(f"{entry['partition']}: {entry['problem']}" for entry in bad[:3])
    if len(bad) > 3:
        detail += f"; and {len(bad) - 3} more (`market verify-archive` lists them)"
    if bad:
        detail = f"{len(bad)} of {len(verified)} partitions: {detail}"
    return CheckResult("archive", "partitions", not bad, detail)


def check_store(stores: Stores, store: Store) -> list[CheckResult]:
    engine = stores.engine(store)
    results: list[CheckResult] = []
    at_head = True
    for lineage in store.lineages:
        revision = migrations.current(engine, lineage)
        expected = migrations.head(lineage)
        ok = revision == expected
        at_head = at_head and ok
        detail = "" if ok else f"at {revision or 'no version'}, head is {expected}"
        results.append(CheckResult(store.name, f"schema_version:{lineage}", ok, detail))
    with translate_errors(store.name), engine.connect() as connection:
        connection = connection.execution_options(**{READ_ONLY: True})
        if engine.dialect.name == "sqlite":
            results.extend(_sqlite_checks(store, connection))
        else:
            results.extend(_postgresql_checks(store, connection))
            if at_head:
                results.append(_orphan_check(store, connection))
        if at_head:
            results.extend(_drift(store, connection))
        else:
            results.append(CheckResult(store.name, "drift", False, "skipped: not at head"))
    return results


def _sqlite_checks(store: Store, connection: Connection) -> list[CheckResult]:
    integrity = [row[0] for row in connection.exec_driver_sql("PRAGMA integrity_check")]
    violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    fk_detail = "; ".join(f"{t} row {r} -> {p}" for t, r, p, _ in violations[:5])
    return [
        CheckResult(store.name, "integrity", integrity == ["ok"], "; ".join(integrity[:5])),
        CheckResult(store.name, "foreign_keys", not violations, fk_detail),
    ]


def _postgresql_checks(store: Store, connection: Connection) -> list[CheckResult]:
    invalid_indexes = connection.exec_driver_sql(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE NOT i.indisvalid AND n.nspname = current_schema()"
    ).fetchall()
    unvalidated = connection.exec_driver_sql(
        "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE NOT c.convalidated AND n.nspname = current_schema()"
    ).fetchall()
    return [
        CheckResult(
            store.name,
            "integrity",
            not invalid_indexes,
            ", ".join(f"invalid index {row[0]}" for row in invalid_indexes),
        ),
        CheckResult(
            store.name,
            "constraints_validated",
            not unvalidated,
            ", ".join(f"constraint {row[0]} not validated" for row in unvalidated),
        ),
    ]


def _orphan_check(store: Store, connection: Connection) -> CheckResult:
    """PostgreSQL's equivalent of ``PRAGMA foreign_key_check``: rows whose parent is
    missing (possible after ``session_replication_role = replica`` or disabled triggers)."""
    problems = []
    for lineage in store.lineages:
        for table in lineage_tables(lineage):
            for constraint in table.foreign_key_constraints:
                element = constraint.elements[0]
                child, parent = element.parent, element.column
                parent_table = parent.table
                orphans = connection.execute(
                    select(func.count())
                    .select_from(table)
                    .where(child.is_not(None))
                    .where(~exists().where(parent == child).select_from(parent_table))
                ).scalar_one()
                if orphans:
                    problems.append(f"{table.name}.{child.name}: {orphans} orphan row(s)")
    return CheckResult(store.name, "foreign_keys", not problems, "; ".join(problems[:5]))


def drift(connection: Connection, lineages: tuple[str, ...]) -> list[Any]:
    """Differences between the models of *lineages* and the database (empty: none)."""
    owned = {table.name for lineage in lineages for table in lineage_tables(lineage)}

    def include_object(
        _obj: Any, name: str | None, type_: str, _reflected: bool, _compare_to: Any
    ) -> bool:
        return type_ != "table" or name in owned

    context = MigrationContext.configure(
        connection, opts={"include_object": include_object, "compare_type": True}
    )
    return list(compare_metadata(context, metadata))


def _drift(store: Store, connection: Connection) -> list[CheckResult]:
    differences = drift(connection, store.lineages)
    detail = "; ".join(_describe(diff) for diff in differences[:5])
    return [CheckResult(store.name, "drift", not differences, detail)]


def _describe(diff: Any) -> str:
    if isinstance(diff, list):  # column modifications come grouped
        diff = diff[0]
    kind, *rest = diff
    names = [getattr(item, "name", None) or str(item) for item in rest[:3]]
    return f"{kind} {' '.join(str(name) for name in names if name)}"
