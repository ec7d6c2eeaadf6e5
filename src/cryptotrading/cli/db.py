"""``cryptotrading init`` and the ``cryptotrading db ...`` maintenance commands."""

from __future__ import annotations

from pathlib import Path

import typer

from cryptotrading import migrations
from cryptotrading.cli._common import command_group, open_stores
from cryptotrading.cli._output import JsonOption, console, emit, print_table
from cryptotrading.models import LINEAGES, SCHEMA_VERSIONS
from cryptotrading.ops import check, export, info, lifecycle, maintenance, soft_delete
from cryptotrading.ops.lifecycle import StoreStep

db_app = command_group(
    "Schema versions and maintenance of every store (check, vacuum, export, info, "
    "soft-deleted rows)."
)

StoreOption = typer.Option(None, "--store", help="Only this store (app, market, replica, main).")


def _print_steps(title: str, steps: list[StoreStep]) -> None:
    print_table(
        title,
        ["store", "lineage", "before", "after"],
        [(s.store, s.lineage, s.before or "-", s.after or "-") for s in steps],
    )


def init(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Create every store of the layout (if missing) and migrate it to head."""
    steps = lifecycle.initialize(open_stores(ctx))
    emit(as_json, [s.as_dict() for s in steps], lambda: _print_steps("initialised", steps))


@db_app.command()
def upgrade(
    ctx: typer.Context,
    revision: str = typer.Argument(
        "head", help=f"Target schema version ({', '.join(SCHEMA_VERSIONS)})."
    ),
    store: str | None = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """Upgrade existing stores to REVISION (default: head)."""
    steps = lifecycle.migrate(open_stores(ctx), revision, only=store)
    emit(as_json, [s.as_dict() for s in steps], lambda: _print_steps("upgraded", steps))


@db_app.command()
def downgrade(
    ctx: typer.Context,
    revision: str = typer.Argument(..., help="Target schema version, or 'base'."),
    store: str | None = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """Downgrade stores to REVISION; tables newer than it are dropped."""
    steps = lifecycle.rollback(open_stores(ctx), revision, only=store)
    emit(as_json, [s.as_dict() for s in steps], lambda: _print_steps("downgraded", steps))


@db_app.command()
def current(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Show the schema version of every store."""
    steps = lifecycle.versions(open_stores(ctx))
    payload = [{"store": s.store, "lineage": s.lineage, "version": s.after} for s in steps]
    emit(
        as_json,
        payload,
        lambda: print_table(
            "schema versions",
            ["store", "lineage", "version"],
            [(s.store, s.lineage, s.after or "not migrated") for s in steps],
        ),
    )


@db_app.command()
def history(as_json: bool = JsonOption) -> None:
    """List the schema versions of every lineage, oldest first."""
    payload = [
        {"lineage": lineage, "version": revision, "description": doc}
        for lineage in LINEAGES
        for revision, doc in migrations.history(lineage)
    ]
    emit(
        as_json,
        payload,
        lambda: print_table(
            "migration history",
            ["lineage", "version", "description"],
            [(p["lineage"], p["version"], p["description"]) for p in payload],
        ),
    )


@db_app.command("check")
def check_command(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Integrity, foreign keys, schema version and model drift; exit 1 on any failure."""
    results = check.check_all(open_stores(ctx))
    failed = [r for r in results if not r.ok]
    emit(
        as_json,
        {"ok": not failed, "results": [r.as_dict() for r in results]},
        lambda: print_table(
            "db check",
            ["store", "check", "result", "detail"],
            [(r.store, r.check, "ok" if r.ok else "FAILED", r.detail) for r in results],
        ),
    )
    if failed:
        raise typer.Exit(1)


@db_app.command()
def vacuum(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Reclaim free space (SQLite VACUUM; PostgreSQL VACUUM of our tables)."""
    _maintenance(maintenance.vacuum(open_stores(ctx)), as_json)


@db_app.command()
def analyze(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Refresh query-planner statistics (ANALYZE)."""
    _maintenance(maintenance.analyze(open_stores(ctx)), as_json)


def _maintenance(results: list[maintenance.MaintenanceResult], as_json: bool) -> None:
    emit(
        as_json,
        [r.as_dict() for r in results],
        lambda: print_table(
            "maintenance",
            ["store", "operation", "seconds", "bytes before", "bytes after"],
            [
                (r.store, r.operation, f"{r.seconds:.3f}", r.size_before, r.size_after)
                for r in results
            ],
        ),
    )


@db_app.command("export-schema")
def export_schema(
    ctx: typer.Context,
    output: Path | None = typer.Option(None, "--file", help="Write the DDL to this file."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --file."),
    as_json: bool = JsonOption,
) -> None:
    """Print (or write to a file) the DDL of every store."""
    if output is None:
        ddl = export.export_schema(open_stores(ctx))
    else:
        ddl = export.write_schema(open_stores(ctx), output, force=force)
    if as_json:
        emit(True, {"output": str(output) if output else None, "ddl": ddl}, lambda: None)
    elif output is None:
        typer.echo(ddl, nl=False)
    else:
        console.print(f"schema written to {output} ({len(ddl.encode())} bytes)")


@db_app.command("info")
def info_command(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Stores, files or URLs, schema versions, tables and row counts."""
    infos = info.info(open_stores(ctx))

    def render() -> None:
        for item in infos:
            versions = ", ".join(f"{k} {v or '-'}" for k, v in item.versions.items())
            print_table(
                f"{item.store}: {item.location}",
                ["table", "rows"],
                sorted(item.tables.items()),
                caption=f"{item.backend}, {item.table_count} tables, "
                f"{item.size_bytes} bytes, version {versions}",
            )

    emit(as_json, [i.as_dict() for i in infos], render)


def _print_deleted(title: str, rows: list[soft_delete.DeletedRow]) -> None:
    print_table(
        title,
        ["table", "id", "name", "deleted at", "deleted by"],
        [
            (r.table, r.id, r.label or "", (r.deleted_at or "")[:19], r.deleted_by or "")
            for r in rows
        ],
    )


@db_app.command("list-deleted")
def list_deleted(
    ctx: typer.Context,
    table: str | None = typer.Argument(None, help="Only this table (default: every one)."),
    limit: int = typer.Option(100, "--limit", min=1, help="Rows per table at most."),
    as_json: bool = JsonOption,
) -> None:
    """Soft-deleted rows (users, credentials, agents, decisions ...), newest first."""
    rows = soft_delete.list_deleted(open_stores(ctx), table, limit=limit)
    emit(as_json, [r.as_dict() for r in rows], lambda: _print_deleted("deleted rows", rows))


@db_app.command("restore-deleted")
def restore_deleted(
    ctx: typer.Context,
    table: str = typer.Argument(..., help="Table of the row, e.g. users."),
    row_id: int = typer.Argument(..., metavar="ID", help="Its id (see `db list-deleted`)."),
    as_json: bool = JsonOption,
) -> None:
    """Bring back a soft-deleted row (a user is active again, an agent active)."""
    row = soft_delete.restore_deleted(open_stores(ctx), table, row_id)
    emit(
        as_json,
        row.as_dict(),
        lambda: console.print(
            f"restored {row.table} row {row.id}"
            + (f" ({row.label})" if row.label else "")
            + f", deleted {(row.deleted_at or '')[:19]} by {row.deleted_by or 'unknown'}"
        ),
    )


@db_app.command("purge-deleted")
def purge_deleted(
    ctx: typer.Context,
    older_than: str | None = typer.Option(
        None,
        "--older-than",
        help="Purge rows deleted longer ago than this: 365d, 52w ... "
        "(default: CRYPTOTRADING_RETENTION_DELETED_DAYS).",
    ),
    tables: list[str] | None = typer.Option(None, "--table", help="Only this table (repeatable)."),
    as_json: bool = JsonOption,
) -> None:
    """Delete soft-deleted rows for good once they are older than the retention; rows
    other rows still refer to are kept (and named)."""
    report = soft_delete.purge(open_stores(ctx), older_than, tables=tables or None)
    emit(
        as_json,
        {**report.as_dict(), "rows": report.rows},
        lambda: print_table(
            "purge-deleted",
            ["table", "purged", "kept", "kept by"],
            [
                (name, rows, report.kept.get(name, 0), ", ".join(report.kept_by.get(name, [])))
                for name, rows in report.purged.items()
            ],
            caption=f"deleted before {report.cutoff[:19]}",
        ),
    )
