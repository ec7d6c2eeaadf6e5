"""``cryptotrading services ...``: agents and their messages, the Fear & Greed import,
cache purge and code scanning -- thin over :mod:`cryptotrading.services`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from cryptotrading.cli._common import command_group
from cryptotrading.cli._format import emit_record, json_object_option, open_app_engine, print_record
from cryptotrading.cli._output import JsonOption, console, emit, err_console, print_table
from cryptotrading.common.views import row_view
from cryptotrading.services import agents, code_scan, factors
from cryptotrading.services.cache import Cache

services_app = command_group("Agents and messages, sentiment import, caches and code metrics.")
agents_app = command_group("A2A agents.")
sentiment_app = command_group("Sentiment data.")
cache_app = command_group("Cache tables.")
code_app = command_group("Code metrics.")
services_app.add_typer(agents_app, name="agents")
services_app.add_typer(sentiment_app, name="sentiment")
services_app.add_typer(cache_app, name="cache")
services_app.add_typer(code_app, name="code")


# --------------------------------------------------------------------------- agents


@agents_app.command("list")
def agents_list(
    ctx: typer.Context,
    include_inactive: bool = typer.Option(False, "--all", help="Include deactivated agents."),
    as_json: bool = JsonOption,
) -> None:
    """List registered agents."""
    rows = [
        row_view(a)
        for a in agents.list_agents(open_app_engine(ctx), include_inactive=include_inactive)
    ]
    emit(
        as_json,
        rows,
        lambda: print_table(
            "agents",
            ["agent_id", "type", "status", "capabilities", "last heartbeat"],
            [
                (
                    r["agent_id"],
                    r["agent_type"],
                    r["status"],
                    ", ".join(r["capabilities"] or []),
                    r["last_heartbeat_at"],
                )
                for r in rows
            ],
        ),
    )


@agents_app.command("register")
def agents_register(
    ctx: typer.Context,
    agent_id: str = typer.Argument(..., help="Stable agent id."),
    agent_type: str = typer.Option(..., "--type", help="trader, analyst, risk ..."),
    name: str | None = typer.Option(None, "--name", help="Display name."),
    capabilities: list[str] | None = typer.Option(
        None, "--capability", "-c", help="A capability (repeatable)."
    ),
    endpoint: str | None = typer.Option(None, "--endpoint", help="Where the agent listens."),
    config: str | None = typer.Option(None, "--config", help="JSON object of settings."),
    as_json: bool = JsonOption,
) -> None:
    """Register an agent (or update and reactivate it)."""
    agent = agents.register_agent(
        open_app_engine(ctx),
        agent_id,
        agent_type,
        name=name,
        capabilities=capabilities,
        endpoint=endpoint,
        config=json_object_option(config, "--config"),
    )
    emit_record(as_json, f"agent {agent.agent_id}", row_view(agent))


@agents_app.command("send")
def agents_send(
    ctx: typer.Context,
    sender: str = typer.Argument(..., help="Sending agent id."),
    receiver: str = typer.Argument(..., help="Receiving agent id."),
    payload: str = typer.Option(..., "--payload", help="JSON object."),
    message_type: str = typer.Option("message", "--type", help="Message type."),
    priority: int = typer.Option(0, "--priority", help="Higher is delivered first."),
    correlation_id: str | None = typer.Option(None, "--correlation-id", help="Links replies."),
    as_json: bool = JsonOption,
) -> None:
    """Queue a message from SENDER to RECEIVER."""
    message = agents.send_message(
        open_app_engine(ctx),
        sender,
        receiver,
        json_object_option(payload, "--payload") or {},
        message_type=message_type,
        priority=priority,
        correlation_id=correlation_id,
    )
    emit_record(as_json, f"message {message.message_id}", row_view(message))


@agents_app.command("inbox")
def agents_inbox(
    ctx: typer.Context,
    agent_id: str = typer.Argument(..., help="Receiving agent id."),
    limit: int = typer.Option(10, "--limit", help="Most messages to claim."),
    ack: bool = typer.Option(False, "--ack", help="Acknowledge the claimed messages at once."),
    peek: bool = typer.Option(False, "--peek", help="Only show pending messages, claim none."),
    as_json: bool = JsonOption,
) -> None:
    """Claim the next pending messages of an agent (pending -> delivered)."""
    engine = open_app_engine(ctx)
    if peek:
        messages = agents.list_messages(engine, agent_id, status="pending", limit=limit)
    else:
        messages = agents.claim_messages(engine, agent_id, limit=limit)
        if ack:
            messages = [agents.acknowledge(engine, m.message_id) for m in messages]
    rows = [row_view(m) for m in messages]
    emit(
        as_json,
        rows,
        lambda: print_table(
            f"inbox of {agent_id}",
            ["message_id", "from", "type", "priority", "status", "payload"],
            [
                (
                    r["message_id"],
                    r["sender_id"],
                    r["message_type"],
                    r["priority"],
                    r["status"],
                    json.dumps(r["payload"]),
                )
                for r in rows
            ],
            caption="" if rows else "no pending messages",
        ),
    )


@agents_app.command("ack")
def agents_ack(
    ctx: typer.Context,
    message_id: str = typer.Argument(..., help="A delivered message's id."),
    as_json: bool = JsonOption,
) -> None:
    """Acknowledge a delivered message (delivered -> processed)."""
    data = row_view(agents.acknowledge(open_app_engine(ctx), message_id))
    emit(as_json, data, lambda: console.print(f"message {message_id} processed"))


# ------------------------------------------------------------------------ sentiment


@sentiment_app.command("import")
def sentiment_import(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CRYPTO_FNG_INDEX.csv (YYYYMMDDT,o,h,l,close,v)."),
    symbol: str = typer.Option("BTC", "--symbol", "-s", help="Symbol the index is stored under."),
    as_json: bool = JsonOption,
) -> None:
    """Import the Crypto Fear & Greed index (alternative.me) into sentiment_data."""
    engine = open_app_engine(ctx)
    bar = Progress(
        TextColumn(f"importing {file.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    )
    with bar:
        task = bar.add_task("import", total=None)
        report = factors.import_fear_greed(
            engine,
            file,
            symbol=symbol,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    data = {
        "path": report.path,
        "symbol": report.symbol,
        "source": factors.FEAR_GREED_SOURCE,
        "rows": report.rows,
        "inserted": report.inserted,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "first": report.first,
        "last": report.last,
    }
    emit_record(as_json, "fear & greed import", data)


# ---------------------------------------------------------------------------- cache


@cache_app.command("purge")
def cache_purge(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Delete expired rows of cache_entries, feature_cache and historical_data_cache."""
    report = Cache(open_app_engine(ctx)).purge_expired()
    data = {
        "cache_entries": report.cache_entries,
        "feature_cache": report.feature_cache,
        "historical_data_cache": report.historical_data_cache,
        "total": report.total,
    }
    emit_record(as_json, "expired cache rows deleted", data)


# ----------------------------------------------------------------------------- code


@code_app.command("scan")
def code_scan_command(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Source tree (or .py file) to analyse."),
    threshold: int = typer.Option(
        code_scan.DEFAULT_THRESHOLD, "--threshold", help="Complexity above which an issue opens."
    ),
    top: int = typer.Option(10, "--top", help="Most complex files to show."),
    as_json: bool = JsonOption,
) -> None:
    """Measure lines, complexity and functions of Python files; open issues."""
    report = code_scan.scan_tree(open_app_engine(ctx), path, threshold=threshold)
    ranked = sorted(report.files, key=lambda f: (-f.complexity, f.path))[: max(top, 0)]
    data = {
        "root": report.root,
        "threshold": report.threshold,
        "files": len(report.files),
        "lines_of_code": report.total_lines,
        "new": report.new,
        "changed": report.changed,
        "unchanged": report.unchanged,
        "removed": report.removed,
        "metrics_recorded": report.metrics_recorded,
        "issues_opened": report.issues_opened,
        "issues_resolved": report.issues_resolved,
        "most_complex": [
            {
                "path": f.path,
                "complexity": f.complexity,
                "lines_of_code": f.lines_of_code,
                "functions": f.functions,
                "error": f.error,
            }
            for f in ranked
        ],
    }

    def render() -> None:
        summary = {k: v for k, v in data.items() if k != "most_complex"}
        print_record(f"code scan of {report.root}", summary)
        print_table(
            "most complex files",
            ["complexity", "lines", "functions", "path"],
            [(f.complexity, f.lines_of_code, f.functions, f.path) for f in ranked],
        )

    emit(as_json, data, render)
