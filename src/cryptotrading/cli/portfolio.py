"""``cryptotrading portfolio ...``: Positions and P&L."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import ErrorReportingGroup

portfolio_app = typer.Typer(
    cls=ErrorReportingGroup, no_args_is_help=True, help="Positions and P&L."
)
