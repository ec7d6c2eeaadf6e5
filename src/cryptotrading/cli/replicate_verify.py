"""``cryptotrading replicate verify`` and ``replicate resync``: is the replica equal to
its sources, and repair the key ranges where it is not (registered on import)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from cryptotrading.cli._common import open_stores
from cryptotrading.cli._output import JsonOption, console, emit, err_console, print_table
from cryptotrading.cli.replicate import replicate_app
from cryptotrading.ops import replica_verify

#: Differing ranges printed (``--json`` lists every one).
SHOWN_RANGES = 50

ChunkOption = typer.Option(
    replica_verify.DEFAULT_CHUNK,
    "--chunk-rows",
    min=1,
    help="Source rows per compared chunk (and per replica page).",
)


@contextmanager
def _progress(what: str) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar over tables on stderr (stdout stays clean for --json); none when
    stderr is not a terminal."""
    if not err_console.is_terminal:
        yield lambda _table, _done, _total: None
        return
    bar = Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=err_console,
        transient=True,
    )
    with bar:
        task = bar.add_task("", total=None)

        def advance(table: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=table)

        yield advance


def key_text(key: dict[str, Any]) -> str:
    """``id=5`` or ``symbol=BTC/USDT frequency=1h timestamp=... exchange=binance``."""
    return " ".join(f"{name}={value}" for name, value in key.items())


def _result(check: replica_verify.TableCheck) -> str:
    if check.ok:
        return "ok"
    counts = [(check.missing, "missing"), (check.extra, "extra"), (check.changed, "changed")]
    return "DIFFERS: " + ", ".join(f"{n} {what}" for n, what in counts if n)


def _render_verify(report: replica_verify.VerifyReport) -> None:
    print_table(
        "replica verify",
        ["table", "source", "replica", "result"],
        [
            (check.table, check.source_rows, check.replica_rows, _result(check))
            for check in report.tables
            if check.source_rows or check.replica_rows or not check.ok
        ],
        caption=f"replica {report.replica}",
    )
    ranges = [(check.table, r) for check in report.differing for r in check.ranges]
    if ranges:  # plain lines: keys are long and must not be cut to the terminal's width
        typer.echo("differing key ranges (first .. last differing key):")
        for table, key_range in ranges[:SHOWN_RANGES]:
            last = "" if key_range.last == key_range.first else f" .. {key_text(key_range.last)}"
            typer.echo(
                f"  {table}: {key_text(key_range.first)}{last}: {key_range.missing} missing, "
                f"{key_range.extra} extra, {key_range.changed} changed"
            )
        if len(ranges) > SHOWN_RANGES:
            typer.echo(f"  ... {len(ranges) - SHOWN_RANGES} more ranges (--json lists all)")
    if report.ok:
        console.print(
            f"the replica equals its sources: {len(report.tables)} tables, "
            f"{report.rows_compared} rows compared in {report.seconds:.1f} s"
        )
    else:
        names = ", ".join(check.table for check in report.differing)
        rows = sum(check.differing_rows for check in report.differing)
        console.print(
            f"the replica DIFFERS from its sources in {len(report.differing)} tables "
            f"({names}; {rows} rows); repair with `cryptotrading replicate resync TABLE` "
            "(or `--all`)"
        )


@replicate_app.command("verify")
def verify_command(
    ctx: typer.Context,
    tables: list[str] | None = typer.Argument(
        None, help="Tables to compare, e.g. time_series or app.users (default: all)."
    ),
    chunk_rows: int = ChunkOption,
    as_json: bool = JsonOption,
) -> None:
    """Compare the replica with its sources table by table (row counts and digests of
    primary-key chunks, narrowed to the differing keys); exit 1 when any differs."""
    stores = open_stores(ctx)
    with _progress("verifying") as progress:
        report = replica_verify.verify(stores, tables, chunk_rows=chunk_rows, progress=progress)
    emit(as_json, report.as_dict(), lambda: _render_verify(report))
    if not report.ok:
        raise typer.Exit(1)


def _render_resync(report: replica_verify.ResyncReport) -> None:
    if report.tables:
        print_table(
            "replica resync",
            ["table", "ranges", "fixed", "deleted", "written", "result", "s"],
            [
                (
                    t.table,
                    t.ranges,
                    t.rows_fixed,
                    t.rows_deleted,
                    t.rows_written,
                    "ok" if t.ok else f"{t.still_differing} still differ",
                    f"{t.seconds:.2f}",
                )
                for t in report.tables
            ],
            caption=f"replica {report.replica}",
        )
    fixed = sum(t.rows_fixed for t in report.tables)
    if report.ok:
        console.print(f"rows repaired: {fixed}; the replica equals its sources again")
    else:
        console.print(
            f"rows repaired: {fixed}, but some still differ (the source changed meanwhile?); "
            "run `cryptotrading replicate verify`"
        )


@replicate_app.command("resync")
def resync_command(
    ctx: typer.Context,
    table: str | None = typer.Argument(None, help="The table to repair, e.g. time_series."),
    all_tables: bool = typer.Option(
        False, "--all", help="Repair every replicated table that differs."
    ),
    chunk_rows: int = ChunkOption,
    as_json: bool = JsonOption,
) -> None:
    """Repair a drifted replica table from its source: only the key ranges that differ
    (one replica transaction each), then verify it again; exit 1 if it still differs."""
    stores = open_stores(ctx)
    with _progress("repairing") as progress:
        report = replica_verify.resync(
            stores, table, all_tables=all_tables, chunk_rows=chunk_rows, progress=progress
        )
    emit(as_json, report.as_dict(), lambda: _render_resync(report))
    if not report.ok:
        raise typer.Exit(1)
