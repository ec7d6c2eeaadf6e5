"""``cryptotrading backup ...``: Verified, compressed backups with rotation."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer

from cryptotrading.cli._common import command_group, open_stores
from cryptotrading.cli._output import JsonOption, console, emit, print_table
from cryptotrading.ops import backup, pitr

backup_app = command_group("Verified, compressed backups with rotation.")

DirOption = typer.Option(None, "--dir", help="Backup directory (default: <data_dir>/backups).")


def _directory(ctx: typer.Context, directory: Path | None) -> Path:
    return directory or backup.default_directory(open_stores(ctx))


AllowUnsignedOption = typer.Option(
    False,
    "--allow-unsigned",
    help="Accept a manifest without a signature (made before manifests were signed, or "
    "whose key is lost); the content is still checked.",
)


def _print_manifests(
    title: str, manifests: list[backup.Manifest], trust: list[str] | None = None
) -> None:
    columns = ["id", "store", "kind", "created", "bytes", "rows", "versions"]
    print_table(
        title,
        columns + (["signature"] if trust is not None else []),
        [
            (
                m.id,
                m.store,
                m.kind,
                m.created_at[:19],
                m.size_bytes,
                m.total_rows,
                ", ".join(f"{k} {v}" for k, v in m.schema_versions.items()),
                *([trust[index]] if trust is not None else []),
            )
            for index, m in enumerate(manifests)
        ],
    )


@backup_app.command()
def create(
    ctx: typer.Context,
    store: str | None = typer.Option(None, "--store", help="Only this store (default: all)."),
    kind: str = typer.Option("daily", "--kind", help="daily or weekly (rotation class)."),
    directory: Path | None = DirOption,
    as_json: bool = JsonOption,
) -> None:
    """Back up stores online (writers keep running) into compressed, checksummed files."""
    stores = open_stores(ctx)
    target = _directory(ctx, directory)
    with console.status("backing up ...", spinner="dots") if not as_json else nullcontext():
        manifests = backup.create_backups(stores, kind, target, only=store)
    emit(
        as_json,
        [m.as_dict() for m in manifests],
        lambda: _print_manifests(f"backups written to {target}", manifests),
    )


@backup_app.command("list")
def list_command(
    ctx: typer.Context,
    store: str | None = typer.Option(None, "--store", help="Only backups of this store."),
    directory: Path | None = DirOption,
    as_json: bool = JsonOption,
) -> None:
    """List finished backups, newest first, with the state of their signature
    (valid, altered, unsigned, key missing)."""
    settings = open_stores(ctx).settings
    listed = backup.describe_backups(settings, _directory(ctx, directory), store)
    manifests = [m for m, _trust in listed]
    trust = [t for _m, t in listed]
    emit(
        as_json,
        [{**m.as_dict(), "signed": m.signed, "authenticity": t} for m, t in listed],
        lambda: _print_manifests("backups", manifests, trust),
    )


@backup_app.command()
def verify(
    ctx: typer.Context,
    backup_id: str = typer.Argument(..., metavar="ID", help="Backup id (see `backup list`)."),
    directory: Path | None = DirOption,
    allow_unsigned: bool = AllowUnsignedOption,
    as_json: bool = JsonOption,
) -> None:
    """Signature, checksum, restore into a scratch copy, integrity check, schema lineage
    and row counts; exit 1 if bad."""
    stores = open_stores(ctx)
    result = backup.verify_backup(
        stores, backup_id, _directory(ctx, directory), allow_unsigned=allow_unsigned
    )
    emit(
        as_json,
        result.as_dict(),
        lambda: print_table(
            f"verify {backup_id}",
            ["check", "result", "detail"],
            [
                (c.name, "ok" if c.ok else "FAILED", c.detail if not c.ok else "")
                for c in result.checks
            ],
        ),
    )
    if not result.ok:
        raise typer.Exit(1)


@backup_app.command()
def restore(
    ctx: typer.Context,
    backup_id: str = typer.Argument(..., metavar="ID", help="Backup id (see `backup list`)."),
    directory: Path | None = DirOption,
    allow_unsigned: bool = AllowUnsignedOption,
    force: bool = typer.Option(
        False,
        "--force",
        help="Restore even while other processes use the store (PostgreSQL: they are "
        "disconnected); what they write afterwards is lost.",
    ),
    to: str | None = typer.Option(
        None,
        "--to",
        metavar="TIME",
        help="Point-in-time recovery: bring the store back to this moment (ISO-8601, UTC "
        "when no offset, e.g. 2026-12-01T10:15:00Z); ID may then name the store.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Verify a backup, then swap it in atomically; the old database is kept aside.

    With --to, bring the store back to that moment (PostgreSQL: pgBackRest and the WAL
    archive, see `backup setup`). Refused while another process uses the store: stop
    the writers first.
    """
    stores = open_stores(ctx)
    if to is not None:
        result = pitr.restore(stores, backup_id, to, _directory(ctx, directory), force=force)
        emit(
            as_json,
            result.as_dict(),
            lambda: console.print(
                f"restored store {result.store} to {result.target} from base backup "
                f"{result.base_backup} in {result.seconds:.1f} s; the previous database is "
                f"kept as {result.kept_aside}"
            ),
        )
        return
    restored = backup.restore_backup(
        stores,
        backup_id,
        _directory(ctx, directory),
        allow_unsigned=allow_unsigned,
        force=force,
    )
    emit(
        as_json,
        restored.as_dict(),
        lambda: console.print(
            f"restored {restored.id} into store {restored.store}; "
            f"the previous database is kept as {restored.kept_aside}"
        ),
    )


@backup_app.command()
def prune(
    ctx: typer.Context,
    keep_daily: int = typer.Option(backup.DEFAULT_KEEP_DAILY, "--keep-daily", help="Daily kept."),
    keep_weekly: int = typer.Option(
        backup.DEFAULT_KEEP_WEEKLY, "--keep-weekly", help="Weekly backups kept."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would be deleted."),
    directory: Path | None = DirOption,
    as_json: bool = JsonOption,
) -> None:
    """Delete all but the newest N daily and M weekly backups of every store."""
    removed = backup.prune_backups(
        _directory(ctx, directory), keep_daily, keep_weekly, dry_run=dry_run
    )
    emit(
        as_json,
        {"dry_run": dry_run, "removed": [m.as_dict() for m in removed]},
        lambda: _print_manifests("would remove" if dry_run else "removed", removed),
    )
