"""What the command groups share beyond :mod:`._common`: the app store's engine,
JSON-object and ISO-time options, and the two-column record table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import typer
from sqlalchemy import Engine

from cryptotrading.cli._common import open_stores, print_table
from cryptotrading.errors import ValidationError
from cryptotrading.trading.clock import parse_time

#: Options several command groups declare alike.
UserOption = typer.Option(..., "--user", help="User id or username.")
AtOption = typer.Option(None, "--at", help="When (ISO-8601, default now).")
LimitOption = typer.Option(100, "--limit", min=1, help="At most this many.")
SymbolOption = typer.Option(..., "--symbol", help="ccxt symbol, e.g. BTC/USDT.")
SymbolFilterOption = typer.Option(None, "--symbol", help="Only this symbol.")
FrequencyOption = typer.Option(None, "--frequency", help="Candle frequency, e.g. 1h.")
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


def print_record(title: str, data: Mapping[str, Any]) -> None:
    """One record as a ``field | value`` table."""
    print_table(title, ["field", "value"], list(data.items()))
