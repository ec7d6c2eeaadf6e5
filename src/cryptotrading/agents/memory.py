"""Agent memory (``agent_memory``): what an agent keeps, ranked by relevance.

Relevance of a memory at time *t* (documented in docs/agents.md)::

    importance * 0.5 ** (hours since last touched / half-life) * (1 + ln(1 + access_count) / 4)

where "last touched" is the later of its last recall and its last update. :func:`recall`
returns the most relevant first and counts the access; :func:`remember` keeps at most
``limit`` memories per agent, evicting the least relevant beyond it. :func:`recall` is
the one recall function: the memory capability extends it (query text, embeddings).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, select

from cryptotrading.agents._common import WHERE
from cryptotrading.agents.registry import checked_id, checked_text, optional_id, require_agent
from cryptotrading.common import vectors
from cryptotrading.common.checks import integer, number
from cryptotrading.common.clock import as_utc, utcnow
from cryptotrading.db import unit_of_work
from cryptotrading.models.agents import AgentMemory

#: Defaults of the ``agent_memory_limit`` and ``agent_memory_half_life_hours`` settings.
DEFAULT_LIMIT = 1000
DEFAULT_HALF_LIFE_HOURS = 168.0


def relevance(memory: AgentMemory, now: datetime, half_life_hours: float) -> float:
    """The memory's relevance at *now* (see the module doc)."""
    touched = max(
        as_utc(t) for t in (memory.updated_at, memory.last_accessed_at, memory.created_at) if t
    )
    hours = max(0.0, (now - touched).total_seconds() / 3600)
    decay = 0.5 ** (hours / half_life_hours)
    score: float = memory.importance * decay * (1 + math.log1p(memory.access_count) / 4)
    return score


def remember(
    engine: Engine,
    agent_id: str,
    memory_type: str,
    content: str,
    *,
    key: str | None = None,
    importance: float = 0.5,
    embedding: Any = None,
    limit: int = DEFAULT_LIMIT,
    half_life_hours: float = DEFAULT_HALF_LIFE_HOURS,
) -> AgentMemory:
    """Store an agent memory; with a *key*, the memory of that (type, key) is updated.
    Beyond *limit* memories for the agent, the least relevant others are deleted."""
    fields: dict[str, Any] = {
        "memory_type": checked_id(memory_type, "memory type", limit=64),
        "content": checked_text(content, "content", limit=1_000_000),
        "key": optional_id(key, "key", limit=255),
        "importance": number(importance, "importance", low=0.0, high=1.0),
        "embedding": None if embedding is None else vectors.pack(embedding),
    }
    bound = integer(limit, "memory limit", low=1, high=10_000_000)
    with unit_of_work(engine, WHERE) as session:
        require_agent(session, agent_id, lock=True)  # keyed memories: no duplicate
        memory = None
        if fields["key"] is not None:
            memory = session.scalar(
                select(AgentMemory).where(
                    AgentMemory.agent_id == agent_id,
                    AgentMemory.memory_type == fields["memory_type"],
                    AgentMemory.key == fields["key"],
                )
            )
        if memory is None:
            memory = AgentMemory(agent_id=agent_id, access_count=0)
            session.add(memory)
        for name, value in fields.items():
            setattr(memory, name, value)
        session.flush()
        _evict(session, agent_id, keep=memory.id, bound=bound, half_life=half_life_hours)
        return memory


def _evict(session: Any, agent_id: str, *, keep: int, bound: int, half_life: float) -> None:
    ids = session.scalars(select(AgentMemory.id).where(AgentMemory.agent_id == agent_id)).all()
    if len(ids) <= bound:
        return
    others = [
        m
        for m in session.scalars(select(AgentMemory).where(AgentMemory.agent_id == agent_id))
        if m.id != keep
    ]
    now = utcnow()
    others.sort(key=lambda m: (relevance(m, now, half_life), m.id))
    doomed = [m.id for m in others[: len(ids) - bound]]
    session.execute(delete(AgentMemory).where(AgentMemory.id.in_(doomed)))


def recall(
    engine: Engine,
    agent_id: str,
    *,
    memory_type: str | None = None,
    min_importance: float = 0.0,
    limit: int = 10,
    half_life_hours: float = DEFAULT_HALF_LIFE_HOURS,
) -> list[AgentMemory]:
    """The agent's most relevant memories first (see the module doc); each returned
    memory's ``access_count`` is incremented and ``last_accessed_at`` set."""
    limit = integer(limit, "limit", low=1, high=10_000)
    floor = number(min_importance, "min_importance", low=0.0, high=1.0)
    half_life = number(half_life_hours, "half-life hours", low=1e-6, high=1e9)
    with unit_of_work(engine, WHERE) as session:
        require_agent(session, agent_id, active=False)
        query = select(AgentMemory).where(
            AgentMemory.agent_id == agent_id, AgentMemory.importance >= floor
        )
        if memory_type is not None:
            query = query.where(AgentMemory.memory_type == memory_type)
        now = utcnow()
        ranked = sorted(
            session.scalars(query), key=lambda m: (-relevance(m, now, half_life), -m.id)
        )[:limit]
        for memory in ranked:
            memory.access_count += 1
            memory.last_accessed_at = now
        session.flush()
        return ranked
