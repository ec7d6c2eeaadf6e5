"""``cryptotrading ops ...``: Scheduled operations (the spec's cadence)."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import ErrorReportingGroup

ops_app = typer.Typer(
    cls=ErrorReportingGroup, no_args_is_help=True, help="Scheduled operations (the spec's cadence)."
)
