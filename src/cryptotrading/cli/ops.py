"""``cryptotrading ops ...``: Scheduled operations (the spec's cadence)."""

from __future__ import annotations

import shutil
import sys
from datetime import timedelta
from pathlib import Path

import typer

from cryptotrading.cli._common import command_group, open_stores
from cryptotrading.cli._output import JsonOption, console, emit, emit_json, print_table
from cryptotrading.cli.replicate import stop_on_sigterm
from cryptotrading.ops import backup, scheduler

ops_app = command_group("Scheduled operations (the spec's cadence).")


def _print_results(results: list[scheduler.JobResult]) -> None:
    if not results:
        console.print("nothing due (or another `ops run` is in progress)")
        return
    print_table(
        "ops run",
        ["job", "status", "seconds", "detail"],
        [
            (
                r.job,
                r.status,
                f"{r.seconds:.2f}",
                r.error or ", ".join(f"{k}={v}" for k, v in r.detail.items()),
            )
            for r in results
        ],
    )


@ops_app.command()
def run(
    ctx: typer.Context,
    jobs: list[str] | None = typer.Option(None, "--job", help="Run this job now (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Run every job, due or not."),
    loop: bool = typer.Option(False, "--loop", help="Keep running due jobs every --tick seconds."),
    tick: float = typer.Option(60.0, "--tick", min=1.0, help="Seconds between rounds (--loop)."),
    directory: Path | None = typer.Option(None, "--dir", help="Backup directory."),
    keep_daily: int = typer.Option(backup.DEFAULT_KEEP_DAILY, "--keep-daily", min=0),
    keep_weekly: int = typer.Option(backup.DEFAULT_KEEP_WEEKLY, "--keep-weekly", min=0),
    as_json: bool = JsonOption,
) -> None:
    """Run the jobs that are due (replication, health, cache expiry, backups, archive,
    data quality, retention, reclaim, analyze); exit 1 when a job failed."""
    stores = open_stores(ctx)
    options = scheduler.RunOptions(directory, keep_daily, keep_weekly)

    def report(results: list[scheduler.JobResult]) -> None:
        if as_json:
            emit_json([r.as_dict() for r in results])
        else:
            _print_results(results)

    if loop:
        stop_on_sigterm()
        try:
            scheduler.loop(stores, options, tick=tick, on_round=report)
        except KeyboardInterrupt:
            console.print("stopped")
        return
    results = scheduler.run_due(stores, options, only=jobs or None, force=force)
    report(results)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


@ops_app.command("schedule")
def schedule_command(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Every job: how often it runs, when it last succeeded and when it is due."""
    rows = scheduler.schedule(open_stores(ctx))
    emit(
        as_json,
        rows,
        lambda: print_table(
            "schedule",
            ["job", "every", "last ok", "due at", "description"],
            [
                (
                    r["job"],
                    str(timedelta(seconds=r["every_seconds"])),
                    (r["last_ok"] or "never")[:19],
                    "now" if r["due"] else r["due_at"][:19],
                    r["description"],
                )
                for r in rows
            ],
        ),
    )


@ops_app.command("cron")
def cron(ctx: typer.Context) -> None:
    """Print crontab lines that run the cadence (install with `crontab -e`)."""
    stores = open_stores(ctx)
    settings = stores.settings
    beside = Path(sys.executable).parent / "cryptotrading"
    program = str(beside) if beside.exists() else shutil.which("cryptotrading") or "cryptotrading"
    data_dir = Path(settings.data_dir).resolve()
    base = f"{program} --data-dir {data_dir} --layout {settings.layout}"
    log = data_dir / "ops.log"
    typer.echo(
        "# cryptotrading operations cadence (see docs/operations.md)\n"
        f"*/5 * * * * {base} ops run >> {log} 2>&1\n"
        "# or, one job per line instead of `ops run`:\n"
        f"# */5 * * * * {base} replicate\n"
        f"# 0 * * * *   {base} health --record\n"
        f"# 15 2 * * *  {base} backup create --store {stores.app.name} --kind daily"
        f" && {base} backup prune\n"
        f"# 30 3 * * 0  {base} backup create --kind weekly && {base} backup prune\n"
    )
