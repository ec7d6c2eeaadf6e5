"""The ``cryptotrading`` command line: a thin layer over the library."""

from __future__ import annotations

from pathlib import Path

import typer

# Modules that add commands to the groups below when imported (backup, replicate, agents).
from cryptotrading.cli import (  # noqa: F401
    agents_messages,
    agents_state,
    agents_workflows,
    backup_pitr,
    replicate_logical,
    replicate_verify,
)
from cryptotrading.cli._common import State, command_group
from cryptotrading.cli.agents import agents_app
from cryptotrading.cli.backup import backup_app
from cryptotrading.cli.db import db_app, init
from cryptotrading.cli.decisions import decisions_app
from cryptotrading.cli.health import health
from cryptotrading.cli.market import market_app
from cryptotrading.cli.models import models_app
from cryptotrading.cli.ops import ops_app
from cryptotrading.cli.orders import orders_app
from cryptotrading.cli.portfolio import portfolio_app
from cryptotrading.cli.replicate import replicate_app
from cryptotrading.cli.services import services_app
from cryptotrading.cli.users import users_app
from cryptotrading.cli.vault import vault_app

app = command_group(
    "cryptotrading: the data platform of an AI-driven crypto-trading system.",
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Directory of the SQLite files (env CRYPTOTRADING_DATA_DIR)."
    ),
    layout: str | None = typer.Option(
        None, "--layout", help="three, two or single (env CRYPTOTRADING_LAYOUT)."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    ctx.obj = State(data_dir=data_dir, layout=layout, debug=debug)


app.command("init")(init)
app.add_typer(db_app, name="db")
app.add_typer(market_app, name="market")
app.add_typer(users_app, name="users")
app.add_typer(vault_app, name="vault")
app.add_typer(orders_app, name="orders")
app.add_typer(portfolio_app, name="portfolio")
app.add_typer(decisions_app, name="decisions")
app.add_typer(models_app, name="models")
app.add_typer(backup_app, name="backup")
app.add_typer(replicate_app, name="replicate")
app.add_typer(ops_app, name="ops")
app.command("health")(health)
app.add_typer(agents_app, name="agents")
app.add_typer(services_app, name="services")


def main() -> None:
    """Console-script entry point."""
    app()
