"""What every command group shares: global options, opening stores, error reporting
(output helpers are in :mod:`._output`)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from cryptotrading.cli._output import err_console
from cryptotrading.errors import CryptotradingError
from cryptotrading.settings import Settings, load_settings
from cryptotrading.stores import Stores


@dataclass
class State:
    """Global options, kept on the click context."""

    data_dir: Path | None = None
    layout: str | None = None
    debug: bool = False

    def settings(self) -> Settings:
        return load_settings(data_dir=self.data_dir, layout=self.layout)


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, State) else State()


def open_stores(ctx: typer.Context) -> Stores:
    """The stores of the configured layout, closed when the command ends."""
    stores = Stores(state(ctx).settings())
    ctx.call_on_close(stores.close)
    return stores


def report_error(exc: CryptotradingError, *, debug: bool) -> None:
    if debug:
        err_console.print(traceback.format_exc(), markup=False, highlight=False)
    typer.echo(f"error: {exc.message}", err=True)
    typer.echo(f"hint: {exc.hint}", err=True)


class ErrorReportingGroup(TyperGroup):
    """Turns :class:`CryptotradingError` into a one-line message, a hint and an exit
    code (no traceback unless ``--debug``)."""

    def invoke(self, ctx: Any) -> Any:  # typer's own click Context type is private
        try:
            return super().invoke(ctx)
        except CryptotradingError as exc:
            report_error(exc, debug=state(ctx).debug)
            ctx.exit(exc.exit_code)


def command_group(help: str, *, no_args_is_help: bool = True, **options: Any) -> typer.Typer:
    """A command group whose errors print as ``error:``/``hint:`` (see
    :class:`ErrorReportingGroup`); without arguments it shows its help."""
    return typer.Typer(
        cls=ErrorReportingGroup, no_args_is_help=no_args_is_help, help=help, **options
    )
