"""``cryptotrading market ...``: candles, tickers, aggregation, gaps and quality."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import ErrorReportingGroup

market_app = typer.Typer(
    cls=ErrorReportingGroup,
    no_args_is_help=True,
    help="Market data: candles (import, export, show, download), tickers, gaps, quality.",
)
