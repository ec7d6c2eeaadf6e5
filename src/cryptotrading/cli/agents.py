"""``cryptotrading agents ...``: the agent registry and connections, thin over
:mod:`cryptotrading.agents` (messages: :mod:`.agents_messages`; workflows:
:mod:`.agents_workflows`; contexts and memory: :mod:`.agents_state`)."""

from __future__ import annotations

from typing import Any

import typer

from cryptotrading import agents
from cryptotrading.cli._common import command_group
from cryptotrading.cli._format import json_object_option
from cryptotrading.cli._output import JsonOption, emit
from cryptotrading.cli.agents_support import (
    AgentArgument,
    emit_row,
    moment,
    open_agents,
    say,
    table,
)
from cryptotrading.common.clock import iso
from cryptotrading.common.views import row_view
from cryptotrading.models.agents import A2AAgent, A2AConnection

agents_app = command_group(
    "Agents: registry, connections, messages, dead letters, workflows, contexts, memory."
)

ProtocolOption = typer.Option("a2a", "--protocol", help="Protocol of the connection.")


def _agents_table(title: str, found: list[A2AAgent]) -> None:
    table(
        title,
        ["agent_id", "type", "status", "capabilities", "last heartbeat"],
        [
            (
                a.agent_id,
                a.agent_type,
                a.status,
                ", ".join(a.capabilities or []),
                a.last_heartbeat_at,
            )
            for a in found
        ],
        empty="no agents",
    )


def _connection_view(connection: A2AConnection) -> dict[str, Any]:
    return row_view(connection)


@agents_app.command("register")
def register(
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
        open_agents(ctx).engine,
        agent_id,
        agent_type,
        name=name,
        capabilities=capabilities,
        endpoint=endpoint,
        config=json_object_option(config, "--config"),
    )
    emit_row(as_json, f"agent {agent.agent_id}", row_view(agent))


@agents_app.command("list")
def list_(
    ctx: typer.Context,
    include_inactive: bool = typer.Option(False, "--all", help="Include deactivated agents."),
    capability: str | None = typer.Option(
        None, "--capability", "-c", help="Only agents offering this capability."
    ),
    as_json: bool = JsonOption,
) -> None:
    """List registered agents by id."""
    found = agents.list_agents(
        open_agents(ctx).engine, include_inactive=include_inactive, capability=capability
    )
    emit(as_json, [row_view(a) for a in found], lambda: _agents_table("agents", found))


@agents_app.command("show")
def show(ctx: typer.Context, agent_id: str = AgentArgument, as_json: bool = JsonOption) -> None:
    """Show one agent, active or deactivated."""
    agent = agents.get_agent(open_agents(ctx).engine, agent_id)
    emit_row(as_json, f"agent {agent.agent_id}", row_view(agent))


@agents_app.command("deactivate")
def deactivate(
    ctx: typer.Context, agent_id: str = AgentArgument, as_json: bool = JsonOption
) -> None:
    """Deactivate an agent (kept for the record).

    Messages to or from it are refused from now on; `register` reactivates it."""
    agent = agents.deactivate_agent(open_agents(ctx).engine, agent_id)
    say(as_json, row_view(agent), f"agent {agent.agent_id} deactivated")


@agents_app.command("heartbeat")
def heartbeat(
    ctx: typer.Context, agent_id: str = AgentArgument, as_json: bool = JsonOption
) -> None:
    """Record that an active agent is alive."""
    at = agents.heartbeat(open_agents(ctx).engine, agent_id)
    data = {"agent_id": agent_id, "last_heartbeat_at": iso(at)}
    say(as_json, data, f"agent {agent_id} alive at {moment(at)}")


@agents_app.command("connect")
def connect(
    ctx: typer.Context,
    agent1: str = typer.Argument(..., help="One agent id."),
    agent2: str = typer.Argument(..., help="The other agent id."),
    protocol: str = ProtocolOption,
    as_json: bool = JsonOption,
) -> None:
    """Connect two active agents so they may message each other.

    Either direction; connecting again is a no-op."""
    made = agents.connect_agents(open_agents(ctx).engine, agent1, agent2, protocol=protocol)
    say(as_json, _connection_view(made), f"{agent1} <-> {agent2} connected ({made.protocol})")


@agents_app.command("disconnect")
def disconnect(
    ctx: typer.Context,
    agent1: str = typer.Argument(..., help="One agent id."),
    agent2: str = typer.Argument(..., help="The other agent id."),
    protocol: str = ProtocolOption,
    as_json: bool = JsonOption,
) -> None:
    """Mark the connection of two agents inactive: sending between them is refused."""
    gone = agents.disconnect_agents(open_agents(ctx).engine, agent1, agent2, protocol=protocol)
    say(as_json, _connection_view(gone), f"{agent1} <-> {agent2} disconnected ({gone.protocol})")


@agents_app.command("connections")
def connections(
    ctx: typer.Context, agent_id: str = AgentArgument, as_json: bool = JsonOption
) -> None:
    """An agent's connections, active or not, oldest first."""
    found = agents.connections_of(open_agents(ctx).engine, agent_id)
    emit(
        as_json,
        [_connection_view(c) for c in found],
        lambda: table(
            f"connections of {agent_id}",
            ["with", "protocol", "status", "established"],
            [
                (
                    c.agent2_id if c.agent1_id == agent_id else c.agent1_id,
                    c.protocol,
                    c.status,
                    c.established_at,
                )
                for c in found
            ],
            empty="no connections",
        ),
    )
