"""What the command groups share beyond :mod:`._common`: the app store's engine,
JSON-object and ISO-time options, and the two-column record table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import typer
from sqlalchemy import Engine

from cryptotrading.cli._common import open_stores
from cryptotrading.cli._output import emit, print_table
from cryptotrading.common.clock import parse_time
from cryptotrading.errors import ValidationError

#: Options several command groups declare alike.
UserOption = typer.Option(..., "--user", help="User id or username.")
AtOption = typer.Option(None, "--at", help="When (ISO-8601, default now).")
LimitOption = typer.Option(100, "--limit", min=1, help="At most this many.")
SymbolOption = typer.Option(..., "--symbol", "-s", help="Symbol in ccxt notation, e.g. BTC/USDT.")
SymbolFilterOption = typer.Option(None, "--symbol", "-s", help="Only this symbol.")
TimeframeFilterOption = typer.Option(None, "--timeframe", "-t", help="Candle timeframe, e.g. 1h.")
#: How a command shows its result (``--json`` is short for ``--output json``).
OutputOption = typer.Option("table", "--output", "-o", help="table, csv or json.")
ConfidenceOption = typer.Option(None, "--confidence", help="0..1.")
OrderTypeOption = typer.Option("market", "--type", help="market, limit, stop, stop_limit.")


def open_app_engine(ctx: typer.Context) -> Engine:
    """The engine of the app store of the configured layout (closed with the command)."""
    stores = open_stores(ctx)
    return stores.engine(stores.app)


def json_object_option(text: str | None, option: str) -> dict[str, Any] | None:
    """The JSON object given as *option* on the command line, or None."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{option} is not valid JSON: {exc.msg}", hint=f"Quote {option} as a JSON object."
        ) from None
    except (ValueError, RecursionError) as exc:  # a 5000-digit number, 100k nested lists
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ValidationError(
            f"{option} is not usable JSON: {reason}", hint=f"Give {option} as a small JSON object."
        ) from None
    if not isinstance(value, dict):
        raise ValidationError(f"{option} must be a JSON object", hint='Use {"key": value}.')
    return value


def time_option(text: str | None, option: str) -> datetime | None:
    """The ISO-8601 time given as *option* (UTC), or None when it was left out."""
    return None if text is None else parse_time(text, option)


def display_time(timestamp_ms: int, timeframe: str | None = None) -> str:
    """A candle time for a table: ``2021-07-10 00:00`` (UTC), or ``2021-07-10`` for
    daily and longer timeframes -- short enough for an 80-column terminal."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    daily = timeframe is not None and timeframe[-1:] in ("d", "w", "M", "y")
    return moment.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M")


def display_number(value: float | None) -> str:
    """A number for a table (display only): at most 6 significant digits after the
    point, no exponent for ordinary sizes; the stored value is untouched."""
    if value is None:
        return ""
    if value != 0 and (abs(value) >= 1e15 or abs(value) < 1e-6):
        return f"{value:.6g}"
    return f"{value:,.{max(0, 6 - len(str(int(abs(value)))))}f}".rstrip("0").rstrip(".")


def print_record(title: str, data: Mapping[str, Any]) -> None:
    """One record as a ``field | value`` table."""
    print_table(title, ["field", "value"], list(data.items()))


def emit_record(as_json: bool, title: str, data: Mapping[str, Any]) -> None:
    """*data* as JSON, or as the ``field | value`` table *title*."""
    emit(as_json, data, lambda: print_record(title, data))
