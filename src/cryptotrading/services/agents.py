"""Category 4 -- agent-to-agent communication.

* Registry: :func:`register_agent`, :func:`heartbeat`, :func:`deactivate_agent`
  (soft delete), :func:`get_agent`, :func:`list_agents`, :func:`connect_agents`.
* Message queue on ``a2a_messages``: :func:`send_message` (sender and receiver must be
  registered and active), :func:`claim_messages` (pending -> delivered, highest
  priority first, then oldest; atomic: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the
  ``BEGIN IMMEDIATE`` write lock on SQLite, so two consumers never get the same
  message), :func:`acknowledge` (delivered -> processed), :func:`requeue_stale`.
* Workflows: :func:`define_workflow` (version bumped when the definition changes),
  :func:`start_execution`, :func:`complete_execution`, :func:`fail_execution`.
* Agent contexts with expiry (:func:`set_context`, :func:`get_context`) and
  importance-weighted agent memory (:func:`remember`, :func:`recall`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, or_, select, update
from sqlalchemy.orm import Session

from cryptotrading.common.checks import (
    document,
    integer,
    number,
    optional_text,
    required_document,
    text,
)
from cryptotrading.common.clock import maybe_utc, utcnow
from cryptotrading.db import unit_of_work
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.models.agents import (
    A2AAgent,
    A2AConnection,
    A2AMessage,
    A2AWorkflow,
    A2AWorkflowExecution,
    AgentContext,
    AgentMemory,
)
from cryptotrading.services import embeddings
from cryptotrading.services._common import WHERE, read_session, serialise

MESSAGE_STATUSES = ("pending", "delivered", "processed")
EXECUTION_STATUSES = ("running", "completed", "failed")


# --------------------------------------------------------------------------- registry


def _agent(session: Session, agent_id: str, *, active: bool = True, lock: bool = False) -> A2AAgent:
    """The agent (row-locked with *lock*, on PostgreSQL), else NotFoundError."""
    query = select(A2AAgent).where(A2AAgent.agent_id == agent_id)
    agent = session.scalar(query.with_for_update() if lock else query)
    if agent is None or (active and (agent.deleted_at is not None or agent.status != "active")):
        state = "is not registered" if agent is None else "is deactivated"
        raise NotFoundError(
            f"agent {agent_id!r} {state}",
            hint="Register it with `cryptotrading services agents register` "
            "(or services.agents.register_agent); list agents with `agents list`.",
        )
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
        _agent(session, agent_id).last_heartbeat_at = now
    return now


def deactivate_agent(engine: Engine, agent_id: str) -> A2AAgent:
    """Soft-delete *agent_id*: status ``inactive``, ``deleted_at`` set, rows kept."""
    with unit_of_work(engine, WHERE) as session:
        agent = _agent(session, agent_id)
        agent.status = "inactive"
        agent.soft_delete()
        return agent


def get_agent(engine: Engine, agent_id: str) -> A2AAgent:
    with read_session(engine) as session:
        return _agent(session, agent_id, active=False)


def list_agents(engine: Engine, *, include_inactive: bool = False) -> list[A2AAgent]:
    query = select(A2AAgent).order_by(A2AAgent.agent_id)
    if not include_inactive:
        query = query.where(A2AAgent.deleted_at.is_(None))
    with read_session(engine) as session:
        return list(session.scalars(query))


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
        _agent(session, agent1_id)
        _agent(session, agent2_id)
        existing = session.scalar(
            select(A2AConnection).where(
                A2AConnection.protocol == protocol,
                or_(
                    (A2AConnection.agent1_id == agent1_id) & (A2AConnection.agent2_id == agent2_id),
                    (A2AConnection.agent1_id == agent2_id) & (A2AConnection.agent2_id == agent1_id),
                ),
            )
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


def connections_of(engine: Engine, agent_id: str) -> list[A2AConnection]:
    with read_session(engine) as session:
        _agent(session, agent_id, active=False)
        query = select(A2AConnection).where(
            or_(A2AConnection.agent1_id == agent_id, A2AConnection.agent2_id == agent_id)
        )
        return list(session.scalars(query.order_by(A2AConnection.id)))


# ------------------------------------------------------------------------- messages


def send_message(
    engine: Engine,
    sender_id: str,
    receiver_id: str,
    payload: dict[str, Any],
    *,
    message_type: str = "message",
    priority: int = 0,
    correlation_id: str | None = None,
) -> A2AMessage:
    """Queue a message (status ``pending``) with a fresh uuid ``message_id``."""
    message = A2AMessage(
        message_id=str(uuid.uuid4()),
        sender_id=sender_id,
        receiver_id=receiver_id,
        message_type=text(message_type, "message type", limit=64),
        payload=required_document(payload, "payload"),
        status="pending",
        priority=integer(priority, "priority", low=-1000, high=1000),
        correlation_id=optional_text(correlation_id, "correlation id", limit=64),
        created_at=utcnow(),
    )
    with unit_of_work(engine, WHERE) as session:
        _agent(session, sender_id)
        _agent(session, receiver_id)
        session.add(message)
        session.flush()
        return message


def claim_messages(engine: Engine, receiver_id: str, *, limit: int = 10) -> list[A2AMessage]:
    """Atomically take up to *limit* pending messages of *receiver_id* (highest
    priority first, then oldest) and mark them ``delivered``. Concurrent consumers
    never receive the same message."""
    limit = integer(limit, "limit", low=1, high=10_000)
    with unit_of_work(engine, WHERE) as session:
        _agent(session, receiver_id, active=False)
        query = (
            select(A2AMessage)
            .where(A2AMessage.receiver_id == receiver_id, A2AMessage.status == "pending")
            .order_by(A2AMessage.priority.desc(), A2AMessage.created_at, A2AMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # SQLite: BEGIN IMMEDIATE already serialises
        )
        messages = list(session.scalars(query))
        now = utcnow()
        for message in messages:
            message.status = "delivered"
            message.delivered_at = now
        session.flush()
        return messages


def acknowledge(engine: Engine, message_id: str) -> A2AMessage:
    """Mark a delivered message ``processed`` (acknowledging twice is harmless)."""
    with unit_of_work(engine, WHERE) as session:
        message = session.scalar(
            select(A2AMessage).where(A2AMessage.message_id == message_id).with_for_update()
        )
        if message is None:
            raise NotFoundError(
                f"message {message_id!r} does not exist",
                hint="Use the message_id returned by claim_messages / `agents inbox`.",
            )
        if message.status == "pending":
            raise ValidationError(
                f"message {message_id} has not been delivered yet",
                hint="Claim it first (claim_messages / `agents inbox`), then acknowledge it.",
            )
        if message.status != "processed":
            message.status = "processed"
            message.processed_at = utcnow()
        return message


def requeue_stale(engine: Engine, *, older_than: timedelta) -> int:
    """Put messages delivered longer than *older_than* ago and never acknowledged back
    to ``pending`` (their consumer died); returns how many."""
    cutoff = utcnow() - older_than
    with unit_of_work(engine, WHERE) as session:
        result = session.execute(
            update(A2AMessage)
            .where(A2AMessage.status == "delivered", A2AMessage.delivered_at < cutoff)
            .values(status="pending", delivered_at=None)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def list_messages(
    engine: Engine, receiver_id: str, *, status: str | None = None, limit: int = 100
) -> list[A2AMessage]:
    """Messages of *receiver_id* (newest first), optionally of one status; no claiming."""
    if status is not None and status not in MESSAGE_STATUSES:
        raise ValidationError(
            f"unknown message status {status!r}", hint=f"Use one of {', '.join(MESSAGE_STATUSES)}."
        )
    query = select(A2AMessage).where(A2AMessage.receiver_id == receiver_id)
    if status is not None:
        query = query.where(A2AMessage.status == status)
    query = query.order_by(A2AMessage.created_at.desc(), A2AMessage.id.desc()).limit(limit)
    with read_session(engine) as session:
        _agent(session, receiver_id, active=False)
        return list(session.scalars(query))


# ------------------------------------------------------------------------ workflows


def _workflow(session: Session, workflow_id: str) -> A2AWorkflow:
    workflow = session.scalar(select(A2AWorkflow).where(A2AWorkflow.workflow_id == workflow_id))
    if workflow is None or workflow.deleted_at is not None:
        raise NotFoundError(
            f"workflow {workflow_id!r} does not exist",
            hint="Define it first with services.agents.define_workflow.",
        )
    return workflow


def define_workflow(
    engine: Engine, workflow_id: str, definition: dict[str, Any], *, name: str | None = None
) -> A2AWorkflow:
    """Create a workflow (version 1) or update it; the version increases only when the
    definition or name actually changes."""
    workflow_id = text(workflow_id, "workflow id", limit=128)
    checked = required_document(definition, "workflow definition")
    name = optional_text(name, "workflow name", limit=128)
    with unit_of_work(engine, WHERE) as session:
        serialise(session, f"a2a_workflow:{workflow_id}")  # one version bump at a time
        workflow = session.scalar(select(A2AWorkflow).where(A2AWorkflow.workflow_id == workflow_id))
        if workflow is None:
            workflow = A2AWorkflow(
                workflow_id=workflow_id, definition=checked, name=name, version=1
            )
            session.add(workflow)
        elif (
            workflow.definition != checked
            or workflow.name != name
            or workflow.deleted_at is not None
        ):
            workflow.definition = checked
            workflow.name = name
            workflow.deleted_at = None
            workflow.version += 1
        session.flush()
        return workflow


def get_workflow(engine: Engine, workflow_id: str) -> A2AWorkflow:
    with read_session(engine) as session:
        return _workflow(session, workflow_id)


def start_execution(
    engine: Engine, workflow_id: str, input_data: dict[str, Any] | None = None
) -> A2AWorkflowExecution:
    """Start a run of the workflow's current version (status ``running``)."""
    data = document(input_data, "input data")
    with unit_of_work(engine, WHERE) as session:
        workflow = _workflow(session, workflow_id)
        execution = A2AWorkflowExecution(
            execution_id=str(uuid.uuid4()),
            workflow_id=workflow.workflow_id,
            workflow_version=workflow.version,
            status="running",
            input_data=data,
            started_at=utcnow(),
        )
        session.add(execution)
        session.flush()
        return execution


def _finish(
    engine: Engine,
    execution_id: str,
    status: str,
    result_data: dict[str, Any] | None,
    error: str | None,
) -> A2AWorkflowExecution:
    with unit_of_work(engine, WHERE) as session:
        execution = session.scalar(
            select(A2AWorkflowExecution)
            .where(A2AWorkflowExecution.execution_id == execution_id)
            .with_for_update()
        )
        if execution is None:
            raise NotFoundError(
                f"workflow execution {execution_id!r} does not exist",
                hint="Use the execution_id returned by start_execution.",
            )
        if execution.status != "running":
            raise ValidationError(
                f"workflow execution {execution_id} is already {execution.status}",
                hint="Only a running execution can be completed or failed; start a new one.",
            )
        execution.status = status
        execution.result_data = result_data
        execution.error = error
        execution.completed_at = utcnow()
        return execution


def complete_execution(
    engine: Engine, execution_id: str, result_data: dict[str, Any] | None = None
) -> A2AWorkflowExecution:
    """Mark a running execution ``completed`` with its result."""
    return _finish(engine, execution_id, "completed", document(result_data, "result data"), None)


def fail_execution(
    engine: Engine,
    execution_id: str,
    error: str,
    result_data: dict[str, Any] | None = None,
) -> A2AWorkflowExecution:
    """Mark a running execution ``failed`` with the error (and any partial result)."""
    message = text(error, "error", limit=100_000)
    return _finish(engine, execution_id, "failed", document(result_data, "result data"), message)


# ------------------------------------------------------------------ contexts, memory


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
    context_type = text(context_type, "context type", limit=64)
    data = required_document(context_data, "context data")
    expiry = maybe_utc(expires_at, "expires_at")
    if ttl_seconds is not None:
        if expiry is not None:
            raise ValidationError(
                "give ttl_seconds or expires_at, not both", hint="Drop one of the two."
            )
        expiry = utcnow() + timedelta(seconds=integer(ttl_seconds, "ttl_seconds", low=1))
    with unit_of_work(engine, WHERE) as session:
        _agent(session, agent_id, lock=True)  # one writer of this agent's contexts at a time
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
        _agent(session, agent_id, active=False)
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


def remember(
    engine: Engine,
    agent_id: str,
    memory_type: str,
    content: str,
    *,
    key: str | None = None,
    importance: float = 0.5,
    embedding: Any = None,
) -> AgentMemory:
    """Store an agent memory; with a *key*, the memory of that (type, key) is updated."""
    fields: dict[str, Any] = {
        "memory_type": text(memory_type, "memory type", limit=64),
        "content": text(content, "content", limit=1_000_000),
        "key": optional_text(key, "key", limit=255),
        "importance": number(importance, "importance", low=0.0, high=1.0),
        "embedding": None if embedding is None else embeddings.pack(embedding),
    }
    with unit_of_work(engine, WHERE) as session:
        _agent(session, agent_id, lock=True)  # keyed memories: no duplicate under concurrency
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
        return memory


def recall(
    engine: Engine,
    agent_id: str,
    *,
    memory_type: str | None = None,
    min_importance: float = 0.0,
    limit: int = 10,
) -> list[AgentMemory]:
    """The agent's most important memories (then most recent); each returned memory's
    ``access_count`` is incremented and ``last_accessed_at`` set."""
    limit = integer(limit, "limit", low=1, high=10_000)
    floor = number(min_importance, "min_importance", low=0.0, high=1.0)
    with unit_of_work(engine, WHERE) as session:
        _agent(session, agent_id, active=False)
        query = select(AgentMemory).where(
            AgentMemory.agent_id == agent_id, AgentMemory.importance >= floor
        )
        if memory_type is not None:
            query = query.where(AgentMemory.memory_type == memory_type)
        query = query.order_by(
            AgentMemory.importance.desc(), AgentMemory.updated_at.desc(), AgentMemory.id.desc()
        )
        memories = list(session.scalars(query.limit(limit)))
        now = utcnow()
        for memory in memories:
            memory.access_count += 1
            memory.last_accessed_at = now
        session.flush()
        return memories
