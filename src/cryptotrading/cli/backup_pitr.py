"""``cryptotrading backup setup``: WAL archiving and pgBackRest for point-in-time
recovery of PostgreSQL stores (``backup restore ID --to TIME``)."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import open_stores
from cryptotrading.cli._output import JsonOption, console, emit, print_table
from cryptotrading.cli.backup import backup_app
from cryptotrading.ops import pitr_postgres


@backup_app.command("setup")
def setup(
    ctx: typer.Context,
    store: str | None = typer.Option(
        None, "--store", help="Only the cluster of this store (default: every PostgreSQL store)."
    ),
    restart: bool = typer.Option(
        False,
        "--restart",
        help="Restart the cluster when archive_mode needs it (disconnects every session).",
    ),
    no_backup: bool = typer.Option(False, "--no-backup", help="Do not take the first full backup."),
    as_json: bool = JsonOption,
) -> None:
    """Set up point-in-time recovery of PostgreSQL stores: a pgBackRest stanza, WAL
    archiving (archive_mode, archive_command) and the first full backup.

    archive_mode takes a restart of the cluster: pass --restart, or restart it yourself
    and run the command again (exit 1 until then).
    """
    stores = open_stores(ctx)
    result = pitr_postgres.setup(stores, store, restart=restart, first_backup=not no_backup)

    def show() -> None:
        print_table(
            "point-in-time recovery",
            ["stanza", "stores", "port", "repository", "first backup", "state"],
            [
                (
                    c.stanza,
                    ", ".join(c.stores),
                    c.port,
                    c.repo,
                    c.first_backup or "",
                    "ready"
                    if c.ready
                    else f"restart needed: {c.restart_command} (or --restart), then run again",
                )
                for c in result.clusters
            ],
        )
        if result.ready:
            console.print(f"archive_command: {result.clusters[0].archive_command}")

    emit(as_json, {**result.as_dict(), "ready": result.ready}, show)
    if not result.ready:
        raise typer.Exit(1)
