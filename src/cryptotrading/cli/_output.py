"""How a command shows its result: the consoles, ``--json``, tables and JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cryptotrading.common.clock import iso

#: Markup off: stored text (names, payloads, errors) is printed as it is, never parsed.
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


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
