"""What every command group shares: global options, opening stores, output."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from cryptotrading.common.clock import iso
from cryptotrading.errors import CryptotradingError
from cryptotrading.settings import Settings, load_settings
from cryptotrading.stores import Stores

console = Console()
err_console = Console(stderr=True)

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


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


def json_value(value: Any) -> Any:
    """JSON for what ``json`` cannot encode: datetimes as ISO-8601 with ``T`` and an
    offset (naive ones are UTC), dates as ``YYYY-MM-DD``, anything else (Decimal,
    Path, UUID) as its string."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=json_value, sort_keys=True) + "\n")


def print_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str = ""
) -> None:
    table = Table(title=title, caption=caption or None)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if value is None else str(value) for value in row))
    console.print(table)


def emit(as_json: bool, payload: Any, render: Callable[[], None]) -> None:
    """Print *payload* as JSON, or call *render* for the human-readable form."""
    if as_json:
        emit_json(payload)
    else:
        render()
