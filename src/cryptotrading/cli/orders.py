"""``cryptotrading orders ...``: Orders: submit, fill, cancel, list."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import command_group
from cryptotrading.cli._format import (
    AtOption,
    LimitOption,
    OrderTypeOption,
    SymbolFilterOption,
    SymbolOption,
    UserOption,
    open_app_engine,
    print_record,
    time_option,
)
from cryptotrading.cli._output import JsonOption, console, emit, print_table
from cryptotrading.common.views import decimal_text
from cryptotrading.models.trading import TradingOrder
from cryptotrading.trading import orders as service
from cryptotrading.trading.accounts import resolve_user
from cryptotrading.trading.portfolio import position_as_dict

OrderIdArgument = typer.Argument(..., help="Order id (ord-...).")

orders_app = command_group("Orders: submit, fill, cancel, list.")


def _show(order: TradingOrder, title: str) -> None:
    data = service.order_as_dict(order)
    print_record(title, {key: value for key, value in data.items() if key != "fills"})
    if data["fills"]:
        print_table(
            "fills",
            ["time", "price", "amount", "fee"],
            [(f["time"], f["price"], f["amount"], f["fee"]) for f in data["fills"]],
        )


@orders_app.command()
def submit(
    ctx: typer.Context,
    user: str = UserOption,
    symbol: str = SymbolOption,
    side: str = typer.Option(..., "--side", help="buy or sell."),
    order_type: str = OrderTypeOption,
    amount: str = typer.Option(..., "--amount", help="Quantity in the base currency."),
    price: str | None = typer.Option(None, "--price", help="Limit price (limit, stop_limit)."),
    stop_price: str | None = typer.Option(None, "--stop-price", help="Stop (trigger) price."),
    client_id: str | None = typer.Option(
        None, "--client-id", help="Client order id: a retried submit returns the same order."
    ),
    exchange: str = typer.Option("", "--exchange", help="Exchange id, e.g. binance."),
    time_in_force: str | None = typer.Option(None, "--tif", help="GTC, IOC, FOK, GTD or PO."),
    decision_id: int | None = typer.Option(
        None, "--decision", help="Trading decision the order executes."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Submit an order (status new)."""
    engine = open_app_engine(ctx)
    result = service.submit_order(
        engine,
        user_id=resolve_user(engine, user),
        symbol=symbol,
        side=side,
        order_type=order_type,
        amount=amount,
        price=price,
        stop_price=stop_price,
        client_order_id=client_id,
        exchange=exchange,
        time_in_force=time_in_force,
        decision_id=decision_id,
    )
    payload = {**service.order_as_dict(result.order), "created": result.created}
    title = "order submitted" if result.created else "order already submitted (same client id)"
    emit(as_json, payload, lambda: _show(result.order, title))


@orders_app.command()
def fill(
    ctx: typer.Context,
    order_id: str = OrderIdArgument,
    price: str = typer.Option(..., "--price", help="Fill price."),
    amount: str = typer.Option(..., "--amount", help="Filled quantity."),
    fee: str = typer.Option("0", "--fee", help="Fee paid, in the quote currency."),
    at: str | None = typer.Option(None, "--at", help="Fill time (ISO-8601, default now)."),
    as_json: bool = JsonOption,
) -> None:
    """Record a fill; the position is updated in the same transaction."""
    result = service.fill_order(
        open_app_engine(ctx),
        order_id,
        price=price,
        amount=amount,
        fee=fee,
        time=time_option(at, "--at"),
    )
    payload = {
        "order": service.order_as_dict(result.order),
        "position": position_as_dict(result.position),
    }

    def render() -> None:
        _show(result.order, "order")
        position = payload["position"]
        console.print(
            f"position {position['symbol']}: quantity {position['quantity']} @ "
            f"{position['average_entry_price']}, realized {position['realized_pnl']}, "
            f"fees {position['fees_paid']}"
        )

    emit(as_json, payload, render)


def _event_command(event: str, doc: str) -> None:
    def command(
        ctx: typer.Context,
        order_id: str = OrderIdArgument,
        exchange_order_id: str | None = typer.Option(
            None, "--exchange-order-id", help="The exchange's id of the order."
        ),
        at: str | None = AtOption,
        as_json: bool = JsonOption,
    ) -> None:
        order = service.transition(
            open_app_engine(ctx),
            order_id,
            event,
            exchange_order_id=exchange_order_id,
            at=time_option(at, "--at"),
        )
        emit(
            as_json,
            service.order_as_dict(order),
            lambda: console.print(f"order {order.order_id} is {order.status}"),
        )

    command.__doc__ = doc
    orders_app.command(event)(command)


_event_command("accept", "Mark a new order open (acknowledged by the exchange).")
_event_command("reject", "Mark a new order rejected.")
_event_command("cancel", "Cancel a new, open or partially filled order.")
_event_command("expire", "Mark an open or partially filled order expired.")


@orders_app.command()
def show(
    ctx: typer.Context,
    order_id: str = OrderIdArgument,
    as_json: bool = JsonOption,
) -> None:
    """Show one order and its fills."""
    order = service.get_order(open_app_engine(ctx), order_id)
    emit(as_json, service.order_as_dict(order), lambda: _show(order, f"order {order_id}"))


@orders_app.command("list")
def list_(
    ctx: typer.Context,
    user: str | None = typer.Option(None, "--user", help="Only this user's orders."),
    symbol: str | None = SymbolFilterOption,
    status: str | None = typer.Option(None, "--status", help="Only this status."),
    limit: int = LimitOption,
    as_json: bool = JsonOption,
) -> None:
    """List orders, newest first."""
    engine = open_app_engine(ctx)
    found = service.list_orders(
        engine,
        user_id=None if user is None else resolve_user(engine, user),
        symbol=symbol,
        status=status,
        limit=limit,
    )
    emit(
        as_json,
        [service.order_as_dict(o) for o in found],
        lambda: print_table(
            "orders",
            ["order id", "symbol", "side", "type", "status", "amount", "filled", "avg price"],
            [
                (
                    o.order_id,
                    o.symbol,
                    o.side,
                    o.order_type,
                    o.status,
                    decimal_text(o.amount),
                    decimal_text(o.filled_amount),
                    decimal_text(o.average_fill_price),
                )
                for o in found
            ],
        ),
    )
