"""``cryptotrading agents ...``: agents, their connections and messages, dead letters,
workflows and executions, contexts and memory -- thin over :mod:`cryptotrading.agents`."""

from __future__ import annotations

import json

import typer

from cryptotrading import agents
from cryptotrading.cli._common import command_group
from cryptotrading.cli._format import emit_record, json_object_option, open_app_engine
from cryptotrading.cli._output import JsonOption, console, emit, print_table
from cryptotrading.common.views import row_view

agents_app = command_group("Agents: registry, messages, dead letters, workflows, memory.")


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
