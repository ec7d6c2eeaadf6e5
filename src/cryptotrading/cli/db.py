"""``cryptotrading init`` and the ``cryptotrading db ...`` maintenance commands."""

from __future__ import annotations

from pathlib import Path

import typer

from cryptotrading import migrations
from cryptotrading.cli._common import command_group, open_stores
from cryptotrading.cli._output import JsonOption, console, emit, print_table
from cryptotrading.models import LINEAGES
from cryptotrading.ops import check, export, info, lifecycle, maintenance
from cryptotrading.ops.lifecycle import StoreStep

db_app = command_group(
    "Schema versions and maintenance of every store (check, vacuum, export, info)."
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
        "head", help="Target schema version (1.0.0, 1.5.0, 2.0.0, 2.1.0)."
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
