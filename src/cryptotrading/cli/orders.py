"""``cryptotrading orders ...``: Orders: submit, fill, cancel, list."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import ErrorReportingGroup

orders_app = typer.Typer(
    cls=ErrorReportingGroup, no_args_is_help=True, help="Orders: submit, fill, cancel, list."
)
