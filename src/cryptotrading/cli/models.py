"""``cryptotrading models ...``: ML model registry and predictions."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import ErrorReportingGroup

models_app = typer.Typer(
    cls=ErrorReportingGroup, no_args_is_help=True, help="ML model registry and predictions."
)
