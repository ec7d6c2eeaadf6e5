"""Registered agents and the connections between them (``a2a_agents``,
``a2a_connections``): who may send to whom."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, or_, select
from sqlalchemy.orm import Session

from cryptotrading.agents._common import WHERE, read_session, serialise
from cryptotrading.common.checks import document, optional_text, text
from cryptotrading.common.clock import utcnow
from cryptotrading.db import unit_of_work
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.models.agents import A2AAgent, A2AConnection

REGISTER_HINT = (
    "Register it with `cryptotrading agents register` (or agents.register_agent); "
    "list agents with `cryptotrading agents list`."
)


def require_agent(
    session: Session, agent_id: str, *, active: bool = True, lock: bool = False
) -> A2AAgent:
    """The agent (row-locked with *lock*, on PostgreSQL), else NotFoundError; with
    *active*, a deactivated agent is refused too."""
    query = select(A2AAgent).where(A2AAgent.agent_id == agent_id)
    agent = session.scalar(query.with_for_update() if lock else query)
    if agent is None or (active and (agent.deleted_at is not None or agent.status != "active")):
        state = "is not registered" if agent is None else "is deactivated"
        raise NotFoundError(f"agent {agent_id!r} {state}", hint=REGISTER_HINT)
    return agent


def register_agent(
    engine: Engine,
    agent_id: str,
    agent_type: str,
    *,
    name: str | None = None,
    capabilities: Sequence[str] | None = None,
    endpoint: str | None = None,
    config: dict[str, Any] | None = None,
) -> A2AAgent:
    """Register *agent_id*, or update and reactivate it when it already exists."""
    agent_id = text(agent_id, "agent id", limit=128)
    fields: dict[str, Any] = {
        "agent_type": text(agent_type, "agent type", limit=64),
        "name": optional_text(name, "agent name", limit=128),
        "capabilities": None if capabilities is None else _capabilities(capabilities),
        "endpoint": optional_text(endpoint, "endpoint", limit=512),
        "config": document(config, "config"),
    }
    now = utcnow()
    with unit_of_work(engine, WHERE) as session:
        serialise(session, f"a2a_agent:{agent_id}")  # concurrent registrations: no unique clash
        agent = session.scalar(select(A2AAgent).where(A2AAgent.agent_id == agent_id))
        if agent is None:
            agent = A2AAgent(agent_id=agent_id)
            session.add(agent)
        for key, value in fields.items():
            setattr(agent, key, value)
        agent.status = "active"
        agent.deleted_at = None
        agent.deleted_by = None
        agent.last_heartbeat_at = now
        session.flush()
        return agent


def _capabilities(values: Sequence[str]) -> list[str]:
    if isinstance(values, str) or not all(isinstance(v, str) and v.strip() for v in values):
        raise ValidationError(
            "capabilities must be a list of non-empty strings",
            hint="Pass e.g. ['trade', 'analyze'].",
        )
    return sorted({v.strip() for v in values})


def heartbeat(engine: Engine, agent_id: str) -> datetime:
    """Record that *agent_id* is alive; returns the heartbeat time."""
    now = utcnow()
    with unit_of_work(engine, WHERE) as session:
        require_agent(session, agent_id).last_heartbeat_at = now
    return now


def deactivate_agent(engine: Engine, agent_id: str) -> A2AAgent:
    """Soft-delete *agent_id*: status ``inactive``, ``deleted_at`` set, rows kept.
    Messages to or from it are refused from now on."""
    with unit_of_work(engine, WHERE) as session:
        agent = require_agent(session, agent_id)
        agent.status = "inactive"
        agent.soft_delete()
        return agent


def get_agent(engine: Engine, agent_id: str) -> A2AAgent:
    """The agent, active or not."""
    with read_session(engine) as session:
        return require_agent(session, agent_id, active=False)


def list_agents(
    engine: Engine, *, include_inactive: bool = False, capability: str | None = None
) -> list[A2AAgent]:
    """Registered agents by id (active only unless *include_inactive*), optionally
    only those offering *capability*."""
    query = select(A2AAgent).order_by(A2AAgent.agent_id)
    if not include_inactive:
        query = query.where(A2AAgent.deleted_at.is_(None), A2AAgent.status == "active")
    with read_session(engine) as session:
        found = list(session.scalars(query))
    if capability is not None:
        found = [agent for agent in found if capability in (agent.capabilities or [])]
    return found


def _link(agent1_id: str, agent2_id: str, protocol: str) -> Any:
    return (A2AConnection.protocol == protocol) & or_(
        (A2AConnection.agent1_id == agent1_id) & (A2AConnection.agent2_id == agent2_id),
        (A2AConnection.agent1_id == agent2_id) & (A2AConnection.agent2_id == agent1_id),
    )


def connect_agents(
    engine: Engine, agent1_id: str, agent2_id: str, *, protocol: str = "a2a"
) -> A2AConnection:
    """Connect two active agents (idempotent; either order finds the same link)."""
    protocol = text(protocol, "protocol", limit=32)
    if agent1_id == agent2_id:
        raise ValidationError(
            f"cannot connect agent {agent1_id!r} to itself", hint="Name two different agents."
        )
    with unit_of_work(engine, WHERE) as session:
        require_agent(session, agent1_id)
        require_agent(session, agent2_id)
        serialise(session, "a2a_connection:" + ":".join(sorted((agent1_id, agent2_id))))
        existing = session.scalar(
            select(A2AConnection).where(_link(agent1_id, agent2_id, protocol))
        )
        if existing is not None:
            existing.status = "active"
            return existing
        connection = A2AConnection(
            agent1_id=agent1_id,
            agent2_id=agent2_id,
            protocol=protocol,
            status="active",
            established_at=utcnow(),
        )
        session.add(connection)
        session.flush()
        return connection


def disconnect_agents(
    engine: Engine, agent1_id: str, agent2_id: str, *, protocol: str = "a2a"
) -> A2AConnection:
    """Mark the connection of two agents ``inactive`` (kept for the record); sending
    between them is refused again unless messaging is open."""
    with unit_of_work(engine, WHERE) as session:
        connection = session.scalar(
            select(A2AConnection).where(_link(agent1_id, agent2_id, protocol)).with_for_update()
        )
        if connection is None:
            raise NotFoundError(
                f"agents {agent1_id!r} and {agent2_id!r} are not connected over {protocol!r}",
                hint="List an agent's connections with `cryptotrading agents connections ID`.",
            )
        connection.status = "inactive"
        return connection


def connections_of(engine: Engine, agent_id: str) -> list[A2AConnection]:
    """Every connection of *agent_id*, active or not, oldest first."""
    with read_session(engine) as session:
        require_agent(session, agent_id, active=False)
        query = select(A2AConnection).where(
            or_(A2AConnection.agent1_id == agent_id, A2AConnection.agent2_id == agent_id)
        )
        return list(session.scalars(query.order_by(A2AConnection.id)))


def require_connection(session: Session, sender_id: str, receiver_id: str) -> None:
    """Refuse a message between two agents that have no active connection."""
    if sender_id == receiver_id:
        return
    found = session.scalar(
        select(A2AConnection.id).where(
            A2AConnection.status == "active",
            or_(
                (A2AConnection.agent1_id == sender_id) & (A2AConnection.agent2_id == receiver_id),
                (A2AConnection.agent1_id == receiver_id) & (A2AConnection.agent2_id == sender_id),
            ),
        )
    )
    if found is None:
        raise NotFoundError(
            f"agents {sender_id!r} and {receiver_id!r} are not connected",
            hint=f"Connect them first: `cryptotrading agents connect {sender_id} {receiver_id}` "
            "(or set CRYPTOTRADING_A2A_OPEN_MESSAGING=true to allow messages between any "
            "two active agents).",
        )
