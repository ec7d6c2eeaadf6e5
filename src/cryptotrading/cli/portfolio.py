"""``cryptotrading portfolio ...``: Positions and P&L."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import command_group, open_stores
from cryptotrading.cli._format import (
    TimeframeFilterOption,
    UserOption,
    open_app_engine,
    time_option,
)
from cryptotrading.cli._output import JsonOption, console, emit, print_table
from cryptotrading.trading.accounts import resolve_user
from cryptotrading.trading.portfolio import (
    POSITION_FIELDS,
    PortfolioSummary,
    position_as_dict,
    summarize,
)
from cryptotrading.trading.positions import list_positions

portfolio_app = command_group("Positions and P&L.")


@portfolio_app.command()
def positions(
    ctx: typer.Context,
    user: str = UserOption,
    include_closed: bool = typer.Option(False, "--all", help="Include closed positions."),
    as_json: bool = JsonOption,
) -> None:
    """List a user's positions as stored (last mark)."""
    engine = open_app_engine(ctx)
    rows = [
        position_as_dict(p)
        for p in list_positions(engine, resolve_user(engine, user), include_closed=include_closed)
    ]
    columns = [c for c in POSITION_FIELDS if c not in _NOT_LISTED]
    emit(
        as_json,
        rows,
        lambda: print_table(
            "positions", [_HEADERS[c] for c in columns], [[r[c] for c in columns] for r in rows]
        ),
    )


#: Position fields ``portfolio positions`` leaves out of its table.
_NOT_LISTED = ("user_id", "market_value", "opened_at", "closed_at", "version")
_HEADERS = {
    "symbol": "symbol",
    "exchange": "exchange",
    "quantity": "qty",
    "average_entry_price": "avg entry",
    "last_price": "last",
    "market_value": "value",
    "unrealized_pnl": "unrealized",
    "realized_pnl": "realized",
    "fees_paid": "fees",
    "share_of_gross": "share",
}


def _render(summary: PortfolioSummary) -> None:
    data = summary.as_dict()
    print_table(
        f"portfolio of user {summary.user_id} marked {data['marked_at']}",
        list(_HEADERS.values()),
        [[p[c] for c in _HEADERS] for p in data["positions"]],
    )
    for key in (
        "starting_cash",
        "cash",
        "realized_pnl",
        "unrealized_pnl",
        "fees_paid",
        "net_pnl",
        "gross_exposure",
        "net_exposure",
        "equity",
    ):
        console.print(f"{key:>15}: {data[key]}", highlight=False)
    if summary.unpriced:
        console.print(f"no candle for: {', '.join(summary.unpriced)} (kept their last mark)")


@portfolio_app.command()
def summary(
    ctx: typer.Context,
    user: str = UserOption,
    starting_cash: str = typer.Option("0", "--starting-cash", help="Cash before any trade."),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Mark with the newest candle at or before this time (ISO-8601)."
    ),
    timeframe: str | None = TimeframeFilterOption,
    no_mark: bool = typer.Option(False, "--no-mark", help="Use the stored marks, no prices."),
    as_json: bool = JsonOption,
) -> None:
    """Mark positions to the latest price and show equity, exposure and P&L."""
    stores = open_stores(ctx)
    engine = stores.engine(stores.app)
    result = summarize(
        engine,
        None if no_mark else stores.engine(stores.market),
        resolve_user(engine, user),
        starting_cash=starting_cash,
        as_of=time_option(as_of, "--as-of"),
        timeframe=timeframe,
    )
    emit(as_json, result.as_dict(), lambda: _render(result))
