"""``cryptotrading vault ...``: encrypted exchange credentials."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import ErrorReportingGroup

vault_app = typer.Typer(
    cls=ErrorReportingGroup,
    no_args_is_help=True,
    help="Encrypted exchange credentials (add, list, show, remove, rotate-key).",
)
