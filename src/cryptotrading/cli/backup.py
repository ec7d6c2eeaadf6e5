"""``cryptotrading backup ...``: Verified, compressed backups with rotation."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import ErrorReportingGroup

backup_app = typer.Typer(
    cls=ErrorReportingGroup,
    no_args_is_help=True,
    help="Verified, compressed backups with rotation.",
)
