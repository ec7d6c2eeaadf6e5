"""``cryptotrading decisions ...``: AI analyses, insights, decisions and outcome evaluation."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import ErrorReportingGroup

decisions_app = typer.Typer(
    cls=ErrorReportingGroup,
    no_args_is_help=True,
    help="AI analyses, insights, decisions and outcome evaluation.",
)
