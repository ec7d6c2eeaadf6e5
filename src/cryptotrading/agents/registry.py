"""Registered agents and the connections between them (``a2a_agents``,
``a2a_connections``): who may send to whom; and the checks of what the queue stores.

Identifiers (agent ids and types, message ids, receipts, group, idempotency and
correlation keys, message types) are refused with a :class:`ValidationError` when they
are not text, blank, too long, hold a control character or are not valid Unicode (a
lone surrogate): before these checks a NUL reached PostgreSQL as a driver error and was
stored as is by SQLite. Free text (reasons, names) and JSON documents (payloads,
configs, results) may hold any valid Unicode except NUL, which PostgreSQL's ``text`` and
``jsonb`` cannot store -- refused on both backends alike; a document's keys must be
strings (``json`` silently turned ``1`` / ``None`` / ``True`` keys into text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, or_, select
from sqlalchemy.orm import Session

from cryptotrading.agents._common import WHERE, read_session, serialise
from cryptotrading.common.checks import required_document, text
from cryptotrading.common.clock import utcnow
from cryptotrading.db import unit_of_work
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.models.agents import A2AAgent, A2AConnection

REGISTER_HINT = (
    "Register it with `cryptotrading agents register` (or agents.register_agent); "
    "list agents with `cryptotrading agents list`."
)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _unicode(value: str, what: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"{what} is not valid Unicode (it holds a lone surrogate)",
            hint=f"Give the {what} as valid UTF-8 text.",
        ) from None
    return value


def checked_id(value: object, what: str, *, limit: int = 128) -> str:
    """An identifier: text of 1 to *limit* characters, not blank, without control
    characters, valid Unicode; unchanged."""
    checked = _unicode(text(value, what, limit=limit), what)
    found = _CONTROL.search(checked)
    if found is not None:
        raise ValidationError(
            f"{what} holds the control character {found.group()!r}",
            hint=f"Use printable characters in the {what}.",
        )
    return checked


def optional_id(value: object, what: str, *, limit: int = 128) -> str | None:
    """:func:`checked_id`, or None."""
    return None if value is None else checked_id(value, what, limit=limit)


def checked_text(value: object, what: str, *, limit: int) -> str:
    """Free text (:func:`~cryptotrading.common.checks.text`) without NUL, valid Unicode."""
    checked = _unicode(text(value, what, limit=limit), what)
    if "\x00" in checked:
        raise ValidationError(
            f"{what} holds a NUL character", hint=f"Remove the NUL (\\x00) from the {what}."
        )
    return checked


def optional_text(value: object, what: str, *, limit: int) -> str | None:
    """:func:`checked_text`, or None."""
    return None if value is None else checked_text(value, what, limit=limit)


def checked_document(value: object, what: str) -> dict[str, Any]:
    """A strict JSON object (:func:`~cryptotrading.common.checks.required_document`)
    whose keys are strings (``json`` would turn ``1``, ``None`` or ``True`` into text,
    so ``{1: 'a', '1': 'b'}`` would not come back as sent) and whose keys and strings
    are valid Unicode without NUL."""
    result = required_document(value, what)
    pending: list[Any] = [result]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            odd = [key for key in item if not isinstance(key, str)]
            if odd:
                raise ValidationError(
                    f"{what} has a key that is not a string: {type(odd[0]).__name__}",
                    hint=f"Use text keys in the {what} (JSON object keys are strings).",
                )
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif isinstance(item, str):
            _unicode(item, what)
            if "\x00" in item:
                raise ValidationError(
                    f"{what} holds a NUL character in a string or key",
                    hint=f"Remove the NUL (\\u0000) from the {what}: PostgreSQL cannot store it.",
                )
    return result


def optional_document(value: object, what: str) -> dict[str, Any] | None:
    """:func:`checked_document`, or None."""
    return None if value is None else checked_document(value, what)


def require_agent(
    session: Session, agent_id: str, *, active: bool = True, lock: bool = False
) -> A2AAgent:
    """The agent (row-locked with *lock*, on PostgreSQL), else NotFoundError; with
    *active*, a deactivated agent is refused too. An id that is no identifier
    (:func:`checked_id`) is a ValidationError."""
    agent_id = checked_id(agent_id, "agent id")
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
    agent_id = checked_id(agent_id, "agent id")
    fields: dict[str, Any] = {
        "agent_type": checked_id(agent_type, "agent type", limit=64),
        "name": optional_text(name, "agent name", limit=128),
        "capabilities": None if capabilities is None else _capabilities(capabilities),
        "endpoint": optional_text(endpoint, "endpoint", limit=512),
        "config": optional_document(config, "config"),
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
    if (
        isinstance(values, str | bytes)
        or not isinstance(values, Sequence | set | frozenset)
        or not all(isinstance(v, str) and v.strip() for v in values)
    ):
        raise ValidationError(
            "capabilities must be a list of non-empty strings",
            hint="Pass e.g. ['trade', 'analyze'].",
        )
    return sorted({checked_id(v, "capability").strip() for v in values})


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
    protocol = checked_id(protocol, "protocol", limit=32)
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
    agent1_id = checked_id(agent1_id, "agent id")
    agent2_id = checked_id(agent2_id, "agent id")
    protocol = checked_id(protocol, "protocol", limit=32)
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
