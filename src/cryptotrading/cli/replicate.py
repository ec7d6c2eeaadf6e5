"""``cryptotrading replicate ...``: Continuous replication to the replica store."""

from __future__ import annotations

import json
import signal

import typer

from cryptotrading.cli._common import command_group, open_stores
from cryptotrading.cli._output import JsonOption, console, emit, emit_json, print_table
from cryptotrading.ops import replication

replicate_app = command_group(
    "Continuous replication to the replica store "
    "(`replicate` runs one pass; `replicate status` shows the lag).",
    no_args_is_help=False,
    invoke_without_command=True,
)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """Let SIGTERM (systemd, docker stop) end a loop like Ctrl-C does. A batch being
    written is rolled back by its transaction either way; nothing is lost."""
    signal.signal(signal.SIGTERM, _interrupt)


def _print_runs(runs: list[replication.TableRun]) -> None:
    moved = [r for r in runs if r.rows]
    total = sum(r.rows for r in runs)
    if moved:
        print_table(
            "replicated",
            ["table", "rows", "batches", "seconds"],
            [(r.table, r.rows, r.batches, f"{r.seconds:.3f}") for r in moved],
        )
    console.print(f"{total} rows copied to the replica ({len(runs)} tables checked)")


@replicate_app.callback()
def replicate(
    ctx: typer.Context,
    follow: bool = typer.Option(False, "--follow", help="Keep replicating until interrupted."),
    interval: float = typer.Option(
        5.0, "--interval", min=0.0, help="Seconds between passes with --follow."
    ),
    batch_size: int = typer.Option(
        replication.DEFAULT_BATCH, "--batch-size", min=1, help="Rows per replica transaction."
    ),
    overlap: float = typer.Option(
        replication.DEFAULT_OVERLAP_SECONDS,
        "--overlap",
        min=0.0,
        help="Re-read rows changed this many seconds before the watermark (late commits).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Copy every row changed since the last pass into the replica (incremental,
    resumable after kill -9 without loss or duplicates)."""
    if ctx.invoked_subcommand is not None:
        return
    stores = open_stores(ctx)

    def report(runs: list[replication.TableRun]) -> None:
        if as_json and follow:  # one compact JSON document per line and pass
            typer.echo(json.dumps([r.as_dict() for r in runs if r.rows], sort_keys=True))
        elif as_json:
            emit_json([r.as_dict() for r in runs])
        else:
            _print_runs(runs)

    if not follow:
        report(replication.replicate_once(stores, batch_size=batch_size, overlap_seconds=overlap))
        return
    stop_on_sigterm()
    try:
        replication.follow(
            stores,
            interval=interval,
            batch_size=batch_size,
            overlap_seconds=overlap,
            on_cycle=report,
        )
    except KeyboardInterrupt:
        console.print("stopped; the next run resumes from the replica's watermarks")


@replicate_app.command("status")
def status_command(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Lag of the replica per table: rows not yet copied and seconds behind."""
    lags = replication.status(open_stores(ctx))
    emit(
        as_json,
        [lag.as_dict() for lag in lags],
        lambda: print_table(
            "replication lag",
            ["table", "source rows", "replica rows", "pending rows", "lag s", "last pass"],
            [
                (
                    lag.table,
                    lag.source_rows,
                    lag.replica_rows,
                    lag.pending_rows,
                    "-" if lag.lag_seconds is None else f"{lag.lag_seconds:.1f}",
                    (lag.replicated_at or "never")[:19],
                )
                for lag in lags
            ],
        ),
    )
