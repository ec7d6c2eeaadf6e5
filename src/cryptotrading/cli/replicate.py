"""``cryptotrading replicate ...``: Continuous replication to the replica store."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import ErrorReportingGroup

replicate_app = typer.Typer(
    cls=ErrorReportingGroup,
    no_args_is_help=True,
    help="Continuous replication to the replica store.",
)
