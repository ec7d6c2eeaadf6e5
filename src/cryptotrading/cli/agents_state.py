"""``cryptotrading agents context ...`` and ``agents memory ...``: an agent's expiring
contexts and its relevance-ranked memory, thin over :mod:`cryptotrading.agents`."""

from __future__ import annotations

import typer

from cryptotrading import agents
from cryptotrading.cli._common import command_group
from cryptotrading.cli._output import JsonOption, emit
from cryptotrading.cli.agents import agents_app
from cryptotrading.cli.agents_support import (
    AgentArgument,
    emit_row,
    json_input,
    open_agents,
    record,
    table,
)
from cryptotrading.common.views import row_view
from cryptotrading.errors import NotFoundError

context_app = command_group("Agent contexts: one JSON document per agent and type.")
memory_app = command_group("Agent memory: what an agent keeps, most relevant first.")
agents_app.add_typer(context_app, name="context")
agents_app.add_typer(memory_app, name="memory")

ContextTypeArgument = typer.Argument(..., help="Context type, e.g. market or session.")


@context_app.command("set")
def context_set(
    ctx: typer.Context,
    agent_id: str = AgentArgument,
    context_type: str = ContextTypeArgument,
    data: str | None = typer.Option(None, "--data", help="The context: a JSON object."),
    data_file: str | None = typer.Option(
        None, "--data-file", help="Read the context from this file ('-': stdin)."
    ),
    ttl: int | None = typer.Option(None, "--ttl", help="Seconds until it expires (default never)."),
    as_json: bool = JsonOption,
) -> None:
    """Store an active agent's context of TYPE, replacing the previous one."""
    document = json_input(
        data, data_file, option="--data", file_option="--data-file", required=True
    )
    context = agents.set_context(
        open_agents(ctx).engine, agent_id, context_type, document or {}, ttl_seconds=ttl
    )
    emit_row(as_json, f"context {context.context_type} of {context.agent_id}", row_view(context))


@context_app.command("get")
def context_get(
    ctx: typer.Context,
    agent_id: str = AgentArgument,
    context_type: str = ContextTypeArgument,
    as_json: bool = JsonOption,
) -> None:
    """Print an agent's unexpired context of TYPE (exit 6 when there is none)."""
    found = agents.get_context(open_agents(ctx).engine, agent_id, context_type)
    if found is None:
        raise NotFoundError(
            f"agent {agent_id[:128]!r} has no context {context_type[:64]!r} (or it expired)",
            hint="Set it with `cryptotrading agents context set AGENT TYPE --data JSON`.",
        )
    emit(as_json, found, lambda: record(f"context {context_type} of {agent_id}", found))


@memory_app.command("add")
def memory_add(
    ctx: typer.Context,
    agent_id: str = AgentArgument,
    memory_type: str = typer.Argument(..., help="Memory type, e.g. lesson or fact."),
    content: str = typer.Argument(..., help="What to remember (text)."),
    key: str | None = typer.Option(
        None, "--key", help="Update the memory of this (type, key) instead of adding one."
    ),
    importance: float = typer.Option(0.5, "--importance", help="0..1."),
    as_json: bool = JsonOption,
) -> None:
    """Store a memory of an active agent.

    Beyond the agent_memory_limit setting, the least relevant others are forgotten."""
    env = open_agents(ctx)
    memory = agents.remember(
        env.engine,
        agent_id,
        memory_type,
        content,
        key=key,
        importance=importance,
        limit=env.settings.agent_memory_limit,
        half_life_hours=env.settings.agent_memory_half_life_hours,
    )
    emit_row(as_json, f"memory {memory.id} of {memory.agent_id}", row_view(memory))


@memory_app.command("recall")
def memory_recall(
    ctx: typer.Context,
    agent_id: str = AgentArgument,
    memory_type: str | None = typer.Option(None, "--type", help="Only memories of this type."),
    limit: int = typer.Option(10, "--limit", help="At most this many."),
    min_importance: float = typer.Option(0.0, "--min-importance", help="0..1."),
    as_json: bool = JsonOption,
) -> None:
    """An agent's most relevant memories first.

    Relevance: importance, decay since last touched, access count; each recall counts
    as an access."""
    env = open_agents(ctx)
    found = agents.recall(
        env.engine,
        agent_id,
        memory_type=memory_type,
        min_importance=min_importance,
        limit=limit,
        half_life_hours=env.settings.agent_memory_half_life_hours,
    )
    emit(
        as_json,
        [row_view(m) for m in found],
        lambda: table(
            f"memories of {agent_id}",
            ["id", "type", "key", "importance", "accesses", "content"],
            [(m.id, m.memory_type, m.key, m.importance, m.access_count, m.content) for m in found],
            empty="no memories",
        ),
    )
