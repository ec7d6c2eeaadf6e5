"""``cryptotrading market ...``: candles, tickers, aggregation, gaps and quality."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cryptotrading.cli._common import command_group, open_stores
from cryptotrading.cli._format import (
    OutputOption,
    SymbolFilterOption,
    SymbolOption,
    display_number,
    display_time,
)
from cryptotrading.cli._output import JsonOption, emit, emit_json, err_console, print_table
from cryptotrading.common.clock import iso_ms
from cryptotrading.errors import ValidationError
from cryptotrading.market.archive import (
    archive_time_series,
    parse_age,
    plan_archive,
    verify_archive,
)
from cryptotrading.market.candles import COLUMNS
from cryptotrading.market.formats import (
    EXPORT_FORMATS,
    FORMATS,
    export_format,
    write_candles_file,
)
from cryptotrading.market.importer import (
    DEFAULT_BATCH,
    ImportResult,
    import_file,
    import_trades_file,
)
from cryptotrading.market.quality import find_gaps, quality_pass
from cryptotrading.market.store import MarketStore
from cryptotrading.market.tickers import aggregate, fetch_and_store
from cryptotrading.outputs import check_output

market_app = command_group(
    "Market data: candles (import, export, show, download), tickers, gaps, quality."
)

TimeframeOption = typer.Option("1h", "--timeframe", "-t", help="Timeframe: 1m, 5m, 1h, 1d ...")
StartOption = typer.Option(None, "--start", help="First candle (ISO date or epoch ms, UTC).")
EndOption = typer.Option(None, "--end", help="End, exclusive (ISO date or epoch ms, UTC).")
ExchangeOption = typer.Option("", "--exchange", "-e", help="Exchange id, e.g. binance.")
ExchangeFilterOption = typer.Option(None, "--exchange", "-e", help="Exchange id.")
FormatOption = typer.Option(None, "--format", help=f"Force a format ({', '.join(FORMATS)}).")
BatchOption = typer.Option(DEFAULT_BATCH, "--batch-size", help="Candles per committed batch.")


def progress_bar(description: str) -> Progress:
    """A progress bar on stderr (stdout stays clean for --json)."""
    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


def _market(ctx: typer.Context, archive_dir: Path | None = None) -> MarketStore:
    return MarketStore(open_stores(ctx), archive_dir=archive_dir)


def _display(output: str, as_json: bool) -> str:
    """The display asked for (``--json`` is short for ``--output json``), checked."""
    output = "json" if as_json else output
    if output not in ("table", "csv", "json"):
        raise ValidationError(
            f"unknown output format {output!r}", hint="Use --output table, csv or json."
        )
    return output


def _time_arg(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else value


@market_app.command("import")
def import_command(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ..., help="CSV, ccxt/Freqtrade JSON (.json/.json.gz), Feather or Parquet."
    ),
    symbol: str = SymbolOption,
    timeframe: str = typer.Option(
        ..., "--timeframe", "-t", help="Timeframe of the file's candles."
    ),
    exchange: str = ExchangeOption,
    fmt: str | None = FormatOption,
    batch_size: int = BatchOption,
    as_json: bool = JsonOption,
) -> None:
    """Import candles from a file (format detected from its content)."""
    _run_import(ctx, import_file, file, symbol, timeframe, exchange, fmt, batch_size, as_json)


@market_app.command("import-trades")
def import_trades_command(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ..., help="ccxt or Freqtrade trades JSON (.json/.json.gz), CSV, Feather or Parquet."
    ),
    symbol: str = SymbolOption,
    timeframe: str = typer.Option(
        "1m", "--timeframe", "-t", help="Timeframe of the candles to build."
    ),
    exchange: str = ExchangeOption,
    fmt: str | None = FormatOption,
    batch_size: int = BatchOption,
    as_json: bool = JsonOption,
) -> None:
    """Build candles from a file of trades and store them: first/highest/lowest/last
    price and summed amount per UTC bucket (a file's first and last buckets may be
    partial; a later import of the same bucket replaces it)."""
    _run_import(
        ctx, import_trades_file, file, symbol, timeframe, exchange, fmt, batch_size, as_json
    )


def _run_import(
    ctx: typer.Context,
    importer: Callable[..., ImportResult],
    file: Path,
    symbol: str,
    timeframe: str,
    exchange: str,
    fmt: str | None,
    batch_size: int,
    as_json: bool,
) -> None:
    market = _market(ctx)
    with progress_bar(f"importing {file.name}") as bar:
        task = bar.add_task("import", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = importer(
            market,
            file,
            symbol=symbol,
            timeframe=timeframe,
            exchange=exchange,
            fmt=fmt,
            batch_size=batch_size,
            progress=advance,
        )
    payload = {
        "path": result.path,
        "format": result.format,
        "symbol": symbol,
        "timeframe": timeframe,
        "exchange": exchange,
        "rows": result.rows,
        "changed": result.changed,
        "unchanged": result.unchanged,
        "batches": result.batches,
        "job_id": result.job_id,
    }
    emit(
        as_json,
        payload,
        lambda: typer.echo(
            f"imported {result.rows:,} {timeframe} candles of {symbol} from {file.name} "
            f"({result.format}): {result.changed:,} new or changed, "
            f"{result.unchanged:,} already stored"
        ),
    )


@market_app.command("export")
def export_command(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Output file (.csv or .parquet)."),
    symbol: str = SymbolOption,
    timeframe: str = TimeframeOption,
    exchange: str | None = ExchangeFilterOption,
    start: str | None = StartOption,
    end: str | None = EndOption,
    fmt: str | None = typer.Option(
        None, "--format", help=f"{' or '.join(EXPORT_FORMATS)} (default: from the extension)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Export candles (resampled when needed) to CSV or Parquet: the format is --format
    or the extension (.csv, .parquet); the file is written whole or not at all."""
    check_output(file)
    fmt = export_format(file, fmt)
    candles = _market(ctx).read_candles(
        symbol, timeframe, _time_arg(start), _time_arg(end), exchange
    )
    written = write_candles_file(candles, file, fmt)
    payload = {"path": str(file), "format": written, "rows": len(candles)}
    emit(as_json, payload, lambda: typer.echo(f"exported {len(candles):,} candles to {file}"))


def _print_timed(
    output: str,
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    table: Callable[[], None],
) -> None:
    """Rows that start with an epoch-ms ``timestamp`` as JSON records or CSV (every
    digit), or through *table* for ``--output table``."""
    if output == "json":
        emit_json([dict(zip(header, row, strict=True)) for row in rows])
    elif output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    else:
        table()


@market_app.command("show")
def show_command(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="Symbol in ccxt notation, e.g. BTC/USDT."),
    timeframe: str = TimeframeOption,
    exchange: str | None = ExchangeFilterOption,
    start: str | None = StartOption,
    end: str | None = EndOption,
    limit: int | None = typer.Option(None, "--limit", "-n", help="Only the newest N candles."),
    complete_only: bool = typer.Option(
        False, "--complete-only", help="Drop resampled buckets with missing candles."
    ),
    output: str = OutputOption,
    as_json: bool = JsonOption,
) -> None:
    """Show candles of one symbol at any timeframe (resampled from finer data when needed)."""
    output = _display(output, as_json)
    candles = _market(ctx).read_candles(
        symbol, timeframe, _time_arg(start), _time_arg(end), exchange, complete_only=complete_only
    )
    if limit is not None:
        candles = candles.slice(max(0, len(candles) - limit), len(candles))
    rows = list(zip(*(getattr(candles, name).tolist() for name in COLUMNS), strict=True))
    _print_timed(
        output,
        COLUMNS,
        rows,
        lambda: print_table(
            f"{symbol} {timeframe}",
            ("time (UTC)", *COLUMNS[1:]),
            [
                (display_time(stamp, timeframe), *prices, display_number(volume))
                for stamp, *prices, volume in rows
            ],
            caption=f"{len(rows)} candles",
        ),
    )


@market_app.command("panel")
def panel_command(
    ctx: typer.Context,
    symbols: list[str] = typer.Argument(..., help="Symbols in ccxt notation, e.g. BTC/USDT."),
    timeframe: str = TimeframeOption,
    column: str = typer.Option("close", "--column", "-c", help="open, high, low, close or volume."),
    exchange: str | None = ExchangeFilterOption,
    start: str | None = StartOption,
    end: str | None = EndOption,
    limit: int | None = typer.Option(None, "--limit", "-n", help="Only the newest N rows."),
    output: str = OutputOption,
    as_json: bool = JsonOption,
) -> None:
    """One column of several symbols side by side (empty where a symbol has no candle)."""
    output = _display(output, as_json)
    panel = _market(ctx).read_panel(
        symbols, timeframe, _time_arg(start), _time_arg(end), exchange, column=column
    )
    if limit is not None:
        panel = panel.iloc[max(0, len(panel) - limit) :]
    stamps = pd.DatetimeIndex(panel.index).as_unit("ms").asi8.tolist()
    rows = [
        [None if value != value else value for value in values]  # NaN -> null / empty
        for values in panel.to_numpy().tolist()
    ]
    names = list(panel.columns)
    timed: list[list[Any]] = [[stamp, *values] for stamp, values in zip(stamps, rows, strict=True)]
    _print_timed(
        output,
        ["timestamp", *names],
        timed,
        lambda: print_table(
            f"{column} {timeframe}",
            ("time (UTC)", *names),
            [
                (display_time(stamp, timeframe), *map(display_number, values))
                for stamp, *values in timed
            ],
            caption=f"{len(rows)} rows",
        ),
    )


@market_app.command("list")
def list_command(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Stored series (hot and archived): symbol, timeframe, exchange, candles and span."""
    series = _market(ctx).series()
    payload = [info._asdict() for info in series]
    emit(
        as_json,
        payload,
        lambda: print_table(
            "time_series",
            ("symbol", "timeframe", "exchange", "candles", "archived", "first (UTC)", "last (UTC)"),
            [
                (
                    s.symbol,
                    s.timeframe,
                    s.exchange,
                    s.rows,
                    s.archived,
                    iso_ms(s.first),
                    iso_ms(s.last),
                )
                for s in series
            ],
        ),
    )


@market_app.command("gaps")
def gaps_command(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="Symbol in ccxt notation, e.g. BTC/USDT."),
    timeframe: str = TimeframeOption,
    exchange: str | None = ExchangeFilterOption,
    start: str | None = StartOption,
    end: str | None = EndOption,
    as_json: bool = JsonOption,
) -> None:
    """List missing intervals of one series."""
    found = find_gaps(
        _market(ctx),
        symbol,
        timeframe,
        exchange=exchange,
        start=_time_arg(start),
        end=_time_arg(end),
    )
    payload = [gap.as_dict() for gap in found]
    emit(
        as_json,
        payload,
        lambda: print_table(
            f"gaps of {symbol} {timeframe}",
            ("from (UTC)", "to (UTC, exclusive)", "missing candles"),
            [(iso_ms(g.start), iso_ms(g.end), g.missing) for g in found],
            caption=f"{len(found)} gaps, {sum(g.missing for g in found)} candles missing",
        ),
    )


@market_app.command("quality")
def quality_command(
    ctx: typer.Context,
    symbol: str | None = SymbolFilterOption,
    timeframe: str | None = typer.Option(None, "--timeframe", "-t", help="Only this timeframe."),
    outlier_z: float = typer.Option(
        12.0, "--outlier-z", help="Robust z-score of an outlier return."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Measure completeness, gaps, duplicates, outliers and staleness of stored series
    and record them in data_quality_metrics."""
    reports = quality_pass(_market(ctx), symbol=symbol, timeframe=timeframe, outlier_z=outlier_z)
    payload = [report.as_dict() for report in reports]
    emit(
        as_json,
        payload,
        lambda: print_table(
            "data quality",
            (
                "source",
                "symbol",
                "tf",
                "candles",
                "complete",
                "gaps",
                "dupes",
                "outliers",
                "stale (s)",
                "score",
            ),
            [
                (
                    r.source,
                    r.symbol,
                    r.timeframe,
                    r.candles,
                    f"{r.completeness:.4f}",
                    r.gaps_count,
                    r.duplicates_rejected,
                    r.outliers_count,
                    f"{r.staleness_seconds:.0f}",
                    f"{r.overall_score:.3f}",
                )
                for r in reports
            ],
        ),
    )


@market_app.command("download")
def download_command(
    ctx: typer.Context,
    exchange: str = typer.Option(..., "--exchange", "-e", help="ccxt exchange id, e.g. binance."),
    symbol: str = SymbolOption,
    timeframe: str = TimeframeOption,
    since: str = typer.Option(..., "--since", help="First candle (ISO date or epoch ms, UTC)."),
    until: str | None = typer.Option(None, "--until", help="End, exclusive (default: now)."),
    limit: int | None = typer.Option(
        None, "--limit", help="Candles per request (default: exchange's)."
    ),
    retries: int = typer.Option(5, "--retries", help="Retries of a network error, with backoff."),
    as_json: bool = JsonOption,
) -> None:
    """Download candles with ccxt; resumes from the newest stored candle."""
    from cryptotrading.market.download import download_ohlcv, make_exchange  # ccxt: slow import

    market = _market(ctx)
    client = make_exchange(exchange)
    with progress_bar(f"downloading {symbol} {timeframe} from {exchange}") as bar:
        task = bar.add_task("download", total=100.0)
        result = download_ohlcv(
            market,
            client,
            symbol=symbol,
            timeframe=timeframe,
            since=_time_arg(since),
            until=_time_arg(until),
            limit=limit,
            retries=retries,
            progress=lambda _rows, pct: bar.update(task, completed=pct),
        )
    payload = {
        "exchange": result.exchange,
        "symbol": result.symbol,
        "timeframe": result.timeframe,
        "rows": result.rows,
        "changed": result.changed,
        "pages": result.pages,
        "resumed_from": result.resumed_from,
        "job_id": result.job_id,
    }
    resumed = f" (resumed from {iso_ms(result.resumed_from)})" if result.resumed_from else ""
    emit(
        as_json,
        payload,
        lambda: typer.echo(
            f"downloaded {result.rows:,} candles in {result.pages} pages{resumed}: "
            f"{result.changed:,} new or changed"
        ),
    )


@market_app.command("tickers")
def tickers_command(
    ctx: typer.Context,
    exchanges: list[str] = typer.Option(..., "--exchange", "-e", help="ccxt exchange id (repeat)."),
    symbols: list[str] = typer.Option(..., "--symbol", "-s", help="Symbol (repeat)."),
    then_aggregate: bool = typer.Option(
        False, "--aggregate", help="Aggregate across exchanges after storing."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Fetch tickers with ccxt and store them per source (market_data_sources, market_data)."""
    from cryptotrading.market.download import make_exchange  # ccxt: slow import

    stores = open_stores(ctx)
    clients = [make_exchange(name) for name in exchanges]
    stored = fetch_and_store(stores, clients, symbols)
    aggregates = (
        [aggregate(stores, symbol).as_dict() for symbol in symbols] if then_aggregate else []
    )
    payload = {"stored": stored, "aggregates": aggregates}
    emit(as_json, payload, lambda: _print_aggregates(aggregates, stored))


def _print_aggregates(
    aggregates: list[dict[str, Any]], stored: dict[str, list[str]] | None = None
) -> None:
    if stored:
        for source, names in stored.items():
            typer.echo(f"stored {len(names)} ticker(s) from {source}")
    if aggregates:
        print_table(
            "cross-exchange aggregate",
            ("symbol", "avg", "vwap", "spread %", "sources", "stale", "outliers"),
            [
                (
                    a["symbol"],
                    f"{a['avg_price']:.8g}",
                    "" if a["vwap"] is None else f"{a['vwap']:.8g}",
                    f"{a['spread_pct']:.4f}",
                    a["sources_count"],
                    a["stale_excluded"],
                    a["outliers_excluded"],
                )
                for a in aggregates
            ],
        )


@market_app.command("aggregate")
def aggregate_command(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="Symbol in ccxt notation, e.g. BTC/USDT."),
    max_age: float = typer.Option(300.0, "--max-age", help="Seconds after which a quote is stale."),
    outlier_pct: float = typer.Option(
        5.0, "--outlier-pct", help="Max distance from the median, in %."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Aggregate the newest stored quote of every source into aggregated_market_data."""
    result = aggregate(open_stores(ctx), symbol, max_age=max_age, outlier_pct=outlier_pct).as_dict()
    emit(as_json, result, lambda: _print_aggregates([result]))


@market_app.command("verify-archive")
def verify_archive_command(
    ctx: typer.Context,
    archive_dir: Path | None = typer.Option(
        None, "--archive-dir", help="Default: <data dir>/archive."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Check every archived Parquet partition against its manifest (row count and
    checksum); exit 1 when one does not match."""
    target = archive_dir or _market(ctx).archive_dir
    results = verify_archive(target)
    failed = [entry for entry in results if not entry["ok"]]
    emit(
        as_json,
        {"ok": not failed, "archive_dir": str(target), "partitions": results},
        lambda: print_table(
            f"archive {target}",
            ["partition", "rows", "result", "problem"],
            [
                (
                    Path(e["partition"]).relative_to(target),
                    e["rows"],
                    "ok" if e["ok"] else "FAILED",
                    e["problem"],
                )
                for e in results
            ],
            caption=f"{len(results)} partitions, {len(failed)} failed",
        ),
    )
    if failed:
        raise typer.Exit(1)


@market_app.command("archive")
def archive_command(
    ctx: typer.Context,
    older_than: str = typer.Option(
        "90d", "--older-than", help="Age of the candles to move: 90d, 12w ..."
    ),
    archive_dir: Path | None = typer.Option(
        None, "--archive-dir", help="Default: <data dir>/archive."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Only show which partitions and how many candles would move."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Move old candles from time_series into verified monthly Parquet partitions;
    reads (show, export, read_ohlcv) keep seeing them."""
    market = _market(ctx)
    target = archive_dir or market.archive_dir
    if dry_run:
        report = plan_archive(market.engine, parse_age(older_than))
        verb = "would archive"
    else:
        report = archive_time_series(market.engine, target, parse_age(older_than))
        verb = "archived"
    payload = {**report.as_dict(), "archive_dir": str(target), "dry_run": dry_run}
    emit(
        as_json,
        payload,
        lambda: typer.echo(
            f"{verb} {report.rows:,} candles in {len(report.partitions)} partition(s) to {target}"
        ),
    )
