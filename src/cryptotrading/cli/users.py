"""``cryptotrading users ...``: User accounts and API keys."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import ErrorReportingGroup

users_app = typer.Typer(
    cls=ErrorReportingGroup, no_args_is_help=True, help="User accounts and API keys."
)
