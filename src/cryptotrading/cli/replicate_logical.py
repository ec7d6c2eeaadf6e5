"""``cryptotrading replicate setup`` (PostgreSQL logical replication between a
PostgreSQL source and replica), ``replicate readers`` and ``replicate forget``
(registered replicas); registered on the ``replicate`` group on import."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import open_stores
from cryptotrading.cli._output import JsonOption, console, emit, print_table
from cryptotrading.cli.replicate import replicate_app
from cryptotrading.ops import logical_replication, replica_readers


@replicate_app.command("setup")
def setup_command(
    ctx: typer.Context,
    drop: bool = typer.Option(
        False, "--drop", help="Remove the subscriptions, their slots and the publications."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Replicate PostgreSQL to PostgreSQL with logical replication (one publication and
    subscription per lineage); checks wal_level and that both schemas match. Idempotent.
    With a SQLite end there is nothing to set up (the change-log replication serves it)."""
    result = logical_replication.setup(open_stores(ctx), drop=drop)

    def render() -> None:
        if result.lineages:
            print_table(
                "logical replication",
                ["lineage", "slot (on the source)", "tables", "action"],
                [
                    (
                        item.lineage,
                        item.slot,
                        item.tables,
                        item.action + (" (slot left on the source)" if item.slot_left else ""),
                    )
                    for item in result.lineages
                ],
                caption="publication (source) and subscription (replica): cryptotrading_<lineage>",
            )
        console.print(result.message, markup=False, highlight=False)

    emit(as_json, result.as_dict(), render)


@replicate_app.command("readers")
def readers_command(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Registered replicas and their positions: the change logs are trimmed below them."""
    found = replica_readers.readers(open_stores(ctx))
    emit(
        as_json,
        [r.as_dict() for r in found],
        lambda: print_table(
            "registered replicas",
            ["replica", "lineage", "registered", "age s"],
            [(r.replica, r.lineage, r.registered_at[:19], f"{r.age_seconds:.0f}") for r in found],
        ),
    )


@replicate_app.command("forget")
def forget_command(
    ctx: typer.Context,
    replica: str = typer.Argument(..., help="A replica as `replicate readers` names it."),
    as_json: bool = JsonOption,
) -> None:
    """Unregister a replica that is gone for good, so the change logs can be trimmed."""
    removed = replica_readers.forget(open_stores(ctx), replica)
    emit(
        as_json,
        {"replica": replica, "removed": removed},
        lambda: console.print(f"forgot {replica}: {removed} registration(s) removed"),
    )
