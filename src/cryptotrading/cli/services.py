"""``cryptotrading services ...``: the Fear & Greed import, cache purge and code
scanning -- thin over :mod:`cryptotrading.services`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from cryptotrading.cli._common import command_group
from cryptotrading.cli._format import emit_record, open_app_engine, print_record
from cryptotrading.cli._output import JsonOption, emit, err_console, print_table
from cryptotrading.services import code_scan, factors
from cryptotrading.services.cache import Cache

services_app = command_group("Sentiment import, caches and code metrics.")
sentiment_app = command_group("Sentiment data.")
cache_app = command_group("Cache tables.")
code_app = command_group("Code metrics.")
services_app.add_typer(sentiment_app, name="sentiment")
services_app.add_typer(cache_app, name="cache")
services_app.add_typer(code_app, name="code")


# ------------------------------------------------------------------------ sentiment


@sentiment_app.command("import")
def sentiment_import(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CRYPTO_FNG_INDEX.csv (YYYYMMDDT,o,h,l,close,v)."),
    symbol: str = typer.Option("BTC", "--symbol", "-s", help="Symbol the index is stored under."),
    as_json: bool = JsonOption,
) -> None:
    """Import the Crypto Fear & Greed index (alternative.me) into sentiment_data."""
    engine = open_app_engine(ctx)
    bar = Progress(
        TextColumn(f"importing {file.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    )
    with bar:
        task = bar.add_task("import", total=None)
        report = factors.import_fear_greed(
            engine,
            file,
            symbol=symbol,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    data = {
        "path": report.path,
        "symbol": report.symbol,
        "source": factors.FEAR_GREED_SOURCE,
        "rows": report.rows,
        "inserted": report.inserted,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "first": report.first,
        "last": report.last,
    }
    emit_record(as_json, "fear & greed import", data)


# ---------------------------------------------------------------------------- cache


@cache_app.command("purge")
def cache_purge(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Delete expired rows of cache_entries, feature_cache and historical_data_cache."""
    report = Cache(open_app_engine(ctx)).purge_expired()
    data = {
        "cache_entries": report.cache_entries,
        "feature_cache": report.feature_cache,
        "historical_data_cache": report.historical_data_cache,
        "total": report.total,
    }
    emit_record(as_json, "expired cache rows deleted", data)


# ----------------------------------------------------------------------------- code


@code_app.command("scan")
def code_scan_command(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Source tree (or .py file) to analyse."),
    threshold: int = typer.Option(
        code_scan.DEFAULT_THRESHOLD, "--threshold", help="Complexity above which an issue opens."
    ),
    top: int = typer.Option(10, "--top", help="Most complex files to show."),
    as_json: bool = JsonOption,
) -> None:
    """Measure lines, complexity and functions of Python files; open issues."""
    report = code_scan.scan_tree(open_app_engine(ctx), path, threshold=threshold)
    ranked = sorted(report.files, key=lambda f: (-f.complexity, f.path))[: max(top, 0)]
    data = {
        "root": report.root,
        "threshold": report.threshold,
        "files": len(report.files),
        "lines_of_code": report.total_lines,
        "new": report.new,
        "changed": report.changed,
        "unchanged": report.unchanged,
        "removed": report.removed,
        "metrics_recorded": report.metrics_recorded,
        "issues_opened": report.issues_opened,
        "issues_resolved": report.issues_resolved,
        "most_complex": [
            {
                "path": f.path,
                "complexity": f.complexity,
                "lines_of_code": f.lines_of_code,
                "functions": f.functions,
                "error": f.error,
            }
            for f in ranked
        ],
    }

    def render() -> None:
        summary = {k: v for k, v in data.items() if k != "most_complex"}
        print_record(f"code scan of {report.root}", summary)
        print_table(
            "most complex files",
            ["complexity", "lines", "functions", "path"],
            [(f.complexity, f.lines_of_code, f.functions, f.path) for f in ranked],
        )

    emit(as_json, data, render)
