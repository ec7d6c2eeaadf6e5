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
    """Let SIGTERM (systemd, docker stop) end a loop like Ctrl-C does (``ops run --loop``:
    each job's transaction rolls back, nothing is lost)."""
    signal.signal(signal.SIGTERM, _interrupt)


def stop_on_signals(stop: replication.Stop) -> None:
    """SIGTERM (systemd, docker stop) and Ctrl-C ask the loop to stop between two
    replica transactions: a clean stop, no traceback, nothing half-applied."""

    def ask(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, ask)
    signal.signal(signal.SIGINT, ask)


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
    as_json: bool = JsonOption,
) -> None:
    """Apply every change the sources logged since the last pass to the replica
    (inserts, updates and deletes by any writer; resumable after kill -9)."""
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

    stop = replication.Stop()
    stop_on_signals(stop)
    if not follow:
        report(replication.replicate_once(stores, batch_size=batch_size, stop=stop))
        return
    replication.follow(stores, interval=interval, batch_size=batch_size, on_cycle=report, stop=stop)
    if not as_json:
        console.print("stopped; the next run resumes from the replica's position")


@replicate_app.command("status")
def status_command(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Changes not yet applied to the replica per table, and the age of the oldest."""
    lags = replication.status(open_stores(ctx))
    emit(
        as_json,
        [lag.as_dict() for lag in lags],
        lambda: print_table(
            "replication lag",
            ["table", "mode", "pending changes", "oldest pending s", "last pass"],
            [
                (
                    lag.table,
                    lag.mode,
                    lag.pending_changes
                    if lag.pending_changes is not None
                    else f"{lag.lag_bytes} B"
                    if lag.lag_bytes is not None
                    else "-",
                    "-"
                    if lag.oldest_pending_seconds is None
                    else f"{lag.oldest_pending_seconds:.1f}",
                    (lag.replicated_at or "never")[:19],
                )
                for lag in lags
            ],
        ),
    )
