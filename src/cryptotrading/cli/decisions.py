"""``cryptotrading decisions ...``: AI analyses, insights, decisions and outcome evaluation."""

from __future__ import annotations

from decimal import Decimal

import typer

from cryptotrading.cli._common import command_group, open_stores
from cryptotrading.cli._format import (
    AtOption,
    ConfidenceOption,
    LimitOption,
    OrderTypeOption,
    SymbolFilterOption,
    SymbolOption,
    TimeframeFilterOption,
    emit_record,
    json_object_option,
    open_app_engine,
    time_option,
)
from cryptotrading.cli._output import JsonOption, console, emit, print_table
from cryptotrading.intelligence import decisions as service
from cryptotrading.intelligence import outcomes, reports
from cryptotrading.intelligence.views import (
    analysis_as_dict,
    decision_as_dict,
    insight_as_dict,
    outcome_as_dict,
)
from cryptotrading.trading.accounts import resolve_user
from cryptotrading.trading.orders import order_as_dict

decisions_app = command_group("AI analyses, insights, decisions and outcome evaluation.")


def _short(value: str | None, places: int = 4) -> str | None:
    """A decimal text rounded for display (JSON output keeps every digit)."""
    return None if value is None else str(round(Decimal(value), places))


@decisions_app.command()
def analyze(
    ctx: typer.Context,
    symbol: str = SymbolOption,
    model: str = typer.Option(..., "--model", help="Model that produced the analysis."),
    analysis_type: str = typer.Option(..., "--type", help="technical, sentiment, onchain ..."),
    signal: str = typer.Option(..., "--signal", help="bullish, bearish, neutral ..."),
    confidence: float | None = ConfidenceOption,
    payload: str | None = typer.Option(None, "--payload", help="JSON object with details."),
    at: str | None = AtOption,
    as_json: bool = JsonOption,
) -> None:
    """Record an AI analysis of a symbol."""
    row = service.record_analysis(
        open_app_engine(ctx),
        symbol=symbol,
        model=model,
        analysis_type=analysis_type,
        signal=signal,
        confidence=confidence,
        payload=json_object_option(payload, "--payload"),
        created_at=time_option(at, "--at"),
    )
    emit_record(as_json, f"analysis {row.id}", analysis_as_dict(row))


@decisions_app.command()
def insight(
    ctx: typer.Context,
    insight_type: str = typer.Option(..., "--type", help="entry, exit, risk ..."),
    recommendation: str = typer.Option(..., "--recommendation", help="buy, sell, hold ..."),
    confidence: float = typer.Option(..., "--confidence", help="0..1."),
    analysis_id: int | None = typer.Option(None, "--analysis", help="Analysis it derives from."),
    symbol: str | None = typer.Option(None, "--symbol", "-s", help="Default: the analysis's."),
    rationale: str | None = typer.Option(None, "--rationale", help="Why."),
    expires_at: str | None = typer.Option(None, "--expires-at", help="ISO-8601."),
    at: str | None = AtOption,
    as_json: bool = JsonOption,
) -> None:
    """Record an insight (an actionable recommendation with a confidence)."""
    row = service.record_insight(
        open_app_engine(ctx),
        insight_type=insight_type,
        recommendation=recommendation,
        confidence=confidence,
        analysis_id=analysis_id,
        symbol=symbol,
        rationale=rationale,
        expires_at=time_option(expires_at, "--expires-at"),
        created_at=time_option(at, "--at"),
    )
    emit_record(as_json, f"insight {row.id}", insight_as_dict(row))


@decisions_app.command()
def decide(
    ctx: typer.Context,
    insight_id: int = typer.Argument(..., help="Insight to act on."),
    user: str | None = typer.Option(None, "--user", help="User id or username who trades."),
    action: str | None = typer.Option(None, "--action", help="buy/sell/hold (default: mapped)."),
    quantity: str | None = typer.Option(None, "--quantity", help="Intended quantity."),
    price: str | None = typer.Option(None, "--price", help="Intended limit price."),
    at: str | None = AtOption,
    as_json: bool = JsonOption,
) -> None:
    """Turn an insight into a pending trading decision."""
    engine = open_app_engine(ctx)
    row = service.decide(
        engine,
        insight_id,
        user_id=None if user is None else resolve_user(engine, user),
        action=action,
        quantity=quantity,
        price=price,
        decided_at=time_option(at, "--at"),
    )
    emit_record(as_json, f"decision {row.id}", decision_as_dict(row))


@decisions_app.command()
def execute(
    ctx: typer.Context,
    decision_id: int = typer.Argument(..., help="Decision to execute."),
    amount: str | None = typer.Option(None, "--amount", help="Default: the decision quantity."),
    order_type: str = OrderTypeOption,
    price: str | None = typer.Option(None, "--price", help="Limit price."),
    stop_price: str | None = typer.Option(None, "--stop-price", help="Stop price."),
    exchange: str = typer.Option("", "--exchange", help="Exchange id."),
    as_json: bool = JsonOption,
) -> None:
    """Place the decision's order (idempotent: client id decision-<id>)."""
    result = service.execute_decision(
        open_app_engine(ctx),
        decision_id,
        amount=amount,
        order_type=order_type,
        price=price,
        stop_price=stop_price,
        exchange=exchange,
    )
    data = {**order_as_dict(result.order), "created": result.created}
    emit(
        as_json,
        data,
        lambda: console.print(f"order {result.order.order_id} ({result.order.status})"),
    )


@decisions_app.command()
def cancel(
    ctx: typer.Context,
    decision_id: int = typer.Argument(..., help="Pending decision to cancel."),
    as_json: bool = JsonOption,
) -> None:
    """Cancel a pending decision."""
    row = service.cancel_decision(open_app_engine(ctx), decision_id)
    emit(as_json, decision_as_dict(row), lambda: console.print(f"decision {row.id} cancelled"))


@decisions_app.command()
def delete(
    ctx: typer.Context,
    decision_id: int = typer.Argument(..., help="Decision to soft-delete."),
    as_json: bool = JsonOption,
) -> None:
    """Soft-delete a decision (kept for audit, hidden from lists and reports)."""
    row = service.delete_decision(open_app_engine(ctx), decision_id)
    emit(as_json, decision_as_dict(row), lambda: console.print(f"decision {row.id} deleted"))


@decisions_app.command()
def evaluate(
    ctx: typer.Context,
    decision_id: int | None = typer.Argument(None, help="One decision (default: all due)."),
    horizon: int = typer.Option(..., "--horizon", min=1, help="Horizon in minutes."),
    timeframe: str | None = TimeframeFilterOption,
    hold_band: str = typer.Option("0.01", "--hold-band", help="Move counted as flat (0.01 = 1%)."),
    max_gap_minutes: int = typer.Option(
        360, "--max-gap", min=1, help="Refuse candles further than this after the target (min)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Evaluate decisions at a horizon against the stored candles."""
    stores = open_stores(ctx)
    app_engine, market_engine = stores.engine(stores.app), stores.engine(stores.market)
    gap = outcomes.gap_from_minutes(max_gap_minutes)
    if decision_id is not None:
        found = [
            outcomes.evaluate_decision(
                app_engine,
                market_engine,
                decision_id,
                horizon,
                timeframe=timeframe,
                hold_band=hold_band,
                max_gap=gap,
            )
        ]
        not_due: list[int] = []
    else:
        sweep = outcomes.evaluate_pending(
            app_engine,
            market_engine,
            horizon,
            timeframe=timeframe,
            hold_band=hold_band,
            max_gap=gap,
        )
        found, not_due = sweep.evaluated, sweep.not_due
    evaluated = [outcome_as_dict(o) for o in found]
    data = {"outcomes": evaluated, "not_due": not_due}

    def render() -> None:
        print_table(
            f"outcomes at {horizon} min",
            ["decision", "outcome", "entry", "exit", "return %", "P&L", "correct"],
            [
                (
                    o["decision_id"],
                    o["actual_outcome"],
                    o["entry_price"],
                    o["exit_price"],
                    _short(o["return_pct"]),
                    o["profit_loss"],
                    o["is_correct"],
                )
                for o in evaluated
            ],
        )
        if not_due:
            console.print(f"not due yet (no candle at the horizon): {not_due}")

    emit(as_json, data, render)


@decisions_app.command("list")
def list_(
    ctx: typer.Context,
    symbol: str | None = SymbolFilterOption,
    status: str | None = typer.Option(None, "--status", help="pending, executed, cancelled."),
    limit: int = LimitOption,
    as_json: bool = JsonOption,
) -> None:
    """List decisions, newest first."""
    rows = [
        decision_as_dict(d)
        for d in service.list_decisions(
            open_app_engine(ctx), symbol=symbol, status=status, limit=limit
        )
    ]
    columns = ["id", "symbol", "action", "confidence", "status", "quantity", "decided_at"]
    emit(
        as_json,
        rows,
        lambda: print_table("decisions", columns, [[r[c] for c in columns] for r in rows]),
    )


@decisions_app.command()
def report(
    ctx: typer.Context,
    by: str = typer.Option(
        "model,analysis_type,bucket",
        "--by",
        help="Comma list of model, analysis_type, bucket, action, symbol.",
    ),
    horizon: int | None = typer.Option(None, "--horizon", help="Only outcomes at this horizon."),
    bucket_width: float = typer.Option(0.1, "--bucket-width", help="Confidence bucket width."),
    as_json: bool = JsonOption,
) -> None:
    """Calibration table: hit rate and average P&L per model / type / confidence bucket."""
    groups = tuple(name.strip() for name in by.split(",") if name.strip())
    rows = reports.calibration_report(
        open_app_engine(ctx), by=groups, horizon_minutes=horizon, bucket_width=bucket_width
    )

    def render() -> None:
        columns, text_rows = reports.render_rows(rows)
        if not columns:
            console.print("no evaluated decisions")
            return
        print_table("calibration", columns, text_rows)

    emit(as_json, [r.as_dict() for r in rows], render)
