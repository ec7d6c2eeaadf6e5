"""Agent contexts (``agent_contexts``): a JSON document per agent and context type,
replaced on each set, optionally expiring; expired ones are never returned and are
deleted by the ``agents`` job of ``ops run``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, or_, select

from cryptotrading.agents._common import WHERE, read_session
from cryptotrading.agents.registry import checked_document, checked_id, require_agent
from cryptotrading.common.checks import integer
from cryptotrading.common.clock import maybe_utc, utcnow
from cryptotrading.db import unit_of_work
from cryptotrading.errors import ValidationError
from cryptotrading.models.agents import AgentContext


def set_context(
    engine: Engine,
    agent_id: str,
    context_type: str,
    context_data: dict[str, Any],
    *,
    ttl_seconds: int | None = None,
    expires_at: datetime | None = None,
) -> AgentContext:
    """Store the agent's context of *context_type* (replacing the previous one),
    expiring after *ttl_seconds* or at *expires_at* (never when both are None)."""
    context_type = checked_id(context_type, "context type", limit=64)
    data = checked_document(context_data, "context data")
    expiry = maybe_utc(expires_at, "expires_at")
    if ttl_seconds is not None:
        if expiry is not None:
            raise ValidationError(
                "give ttl_seconds or expires_at, not both", hint="Drop one of the two."
            )
        seconds = integer(ttl_seconds, "ttl_seconds", low=1, high=10**9)
        expiry = utcnow() + timedelta(seconds=seconds)
    with unit_of_work(engine, WHERE) as session:
        require_agent(session, agent_id, lock=True)  # one writer of its contexts at a time
        context = session.scalar(
            select(AgentContext)
            .where(AgentContext.agent_id == agent_id, AgentContext.context_type == context_type)
            .order_by(AgentContext.id.desc())
            .limit(1)
        )
        if context is None:
            context = AgentContext(agent_id=agent_id, context_type=context_type)
            session.add(context)
        context.context_data = data
        context.expires_at = expiry
        session.flush()
        return context


def get_context(engine: Engine, agent_id: str, context_type: str) -> dict[str, Any] | None:
    """The agent's unexpired context of *context_type*, or None."""
    now = utcnow()
    with read_session(engine) as session:
        require_agent(session, agent_id, active=False)
        context = session.scalar(
            select(AgentContext)
            .where(
                AgentContext.agent_id == agent_id,
                AgentContext.context_type == context_type,
                or_(AgentContext.expires_at.is_(None), AgentContext.expires_at > now),
            )
            .order_by(AgentContext.id.desc())
            .limit(1)
        )
        return None if context is None else context.context_data


def purge_expired_contexts(engine: Engine) -> int:
    """Delete expired agent contexts; returns how many."""
    with unit_of_work(engine, WHERE) as session:
        result = session.execute(delete(AgentContext).where(AgentContext.expires_at <= utcnow()))
        return int(result.rowcount)  # type: ignore[attr-defined]
