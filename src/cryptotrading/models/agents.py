"""Category 4 -- agent-to-agent (A2A) communication: agents, connections,
messages, workflows, executions, contexts and extended agent memory."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cryptotrading.models._common import (
    Base,
    CreatedAtMixin,
    IdMixin,
    SoftDeleteMixin,
    TimestampMixin,
    table_args,
)

AGENT_FK = "a2a_agents.agent_id"
#: Columns added by schema 2.4.0 (the durable queue).
SINCE_2_4 = {"since": "2.4.0"}


class A2AAgent(IdMixin, TimestampMixin, SoftDeleteMixin, Base):
    """A registered agent; ``agent_id`` is its stable public identifier."""

    __tablename__ = "a2a_agents"
    __table_args__ = table_args("1.0.0")

    agent_id: Mapped[str] = mapped_column(String(128), unique=True)
    agent_type: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(128))
    capabilities: Mapped[list[Any] | None]
    status: Mapped[str] = mapped_column(String(20), default="active")
    endpoint: Mapped[str | None] = mapped_column(String(512))
    config: Mapped[dict[str, Any] | None]
    last_heartbeat_at: Mapped[datetime | None]


class A2AConnection(IdMixin, TimestampMixin, Base):
    """A link between two agents over a protocol."""

    __tablename__ = "a2a_connections"
    __table_args__ = table_args("1.0.0", UniqueConstraint("agent1_id", "agent2_id", "protocol"))

    agent1_id: Mapped[str] = mapped_column(String(128), ForeignKey(AGENT_FK, ondelete="CASCADE"))
    agent2_id: Mapped[str] = mapped_column(
        String(128), ForeignKey(AGENT_FK, ondelete="CASCADE"), index=True
    )
    protocol: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20), default="active")
    established_at: Mapped[datetime | None]


class A2AMessage(IdMixin, CreatedAtMixin, Base):
    """A message from one agent to another, and its delivery state (2.4.0: leases,
    attempts, retries, dead letters, expiry, delayed delivery, FIFO groups)."""

    __tablename__ = "a2a_messages"
    __table_args__ = table_args(
        "1.0.0",
        Index(None, "sender_id", "receiver_id"),
        Index(None, "receiver_id", "group_key", "status"),
        Index(None, "status", "lease_expires_at"),
    )

    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    sender_id: Mapped[str] = mapped_column(String(128), ForeignKey(AGENT_FK, ondelete="CASCADE"))
    receiver_id: Mapped[str] = mapped_column(String(128), ForeignKey(AGENT_FK, ondelete="CASCADE"))
    message_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(20), default="pending")
    priority: Mapped[int] = mapped_column(default=0)
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    delivered_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    #: Messages of one receiver sharing a group key are delivered one at a time, in order.
    group_key: Mapped[str | None] = mapped_column(String(128), info=SINCE_2_4)
    #: The receiver processes a key once (``a2a_processed_keys``), whatever the redeliveries.
    idempotency_key: Mapped[str | None] = mapped_column(String(128), info=SINCE_2_4)
    #: Deliveries so far; after ``max_attempts`` a failed delivery dead-letters the message.
    attempts: Mapped[int] = mapped_column(default=0, server_default="0", info=SINCE_2_4)
    max_attempts: Mapped[int] = mapped_column(default=5, server_default="5", info=SINCE_2_4)
    #: Not delivered before this time (delayed delivery, retry backoff).
    not_before: Mapped[datetime | None] = mapped_column(info=SINCE_2_4)
    #: Not delivered after this time (TTL): the message becomes ``expired``.
    expires_at: Mapped[datetime | None] = mapped_column(info=SINCE_2_4)
    #: While ``delivered``: the lease (visibility timeout) and its receipt token.
    lease_expires_at: Mapped[datetime | None] = mapped_column(info=SINCE_2_4)
    receipt: Mapped[str | None] = mapped_column(String(36), info=SINCE_2_4)
    last_error: Mapped[str | None] = mapped_column(Text, info=SINCE_2_4)
    dead_lettered_at: Mapped[datetime | None] = mapped_column(info=SINCE_2_4)


#: The claim's order (2.4.0; replaces the 1.0.0 index on receiver_id, status): an
#: ordered index scan that stops after the batch, whatever the backlog.
Index(
    "ix_a2a_messages_claim_order",
    A2AMessage.receiver_id,
    A2AMessage.status,
    A2AMessage.priority.desc(),
    A2AMessage.created_at,
    A2AMessage.id,
    info=SINCE_2_4,
)
#: Pending messages that can expire (2.4.0): the claim's sweep probe finds them at once.
Index(
    "ix_a2a_messages_pending_expiry",
    A2AMessage.receiver_id,
    A2AMessage.expires_at,
    sqlite_where=text("status = 'pending' AND expires_at IS NOT NULL"),
    postgresql_where=text("status = 'pending' AND expires_at IS NOT NULL"),
    info=SINCE_2_4,
)


class A2AWorkflow(IdMixin, TimestampMixin, SoftDeleteMixin, Base):
    """A workflow definition; ``version`` increases with each change."""

    __tablename__ = "a2a_workflows"
    __table_args__ = table_args("1.0.0")

    workflow_id: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str | None] = mapped_column(String(128))
    definition: Mapped[dict[str, Any]]
    version: Mapped[int] = mapped_column(default=1)


class A2AWorkflowExecution(IdMixin, TimestampMixin, Base):
    """One run of a workflow."""

    __tablename__ = "a2a_workflow_executions"
    __table_args__ = table_args("1.0.0", Index(None, "workflow_id", "status"))

    execution_id: Mapped[str] = mapped_column(String(64), unique=True)
    workflow_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("a2a_workflows.workflow_id", ondelete="CASCADE")
    )
    workflow_version: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(20), default="pending")
    input_data: Mapped[dict[str, Any] | None]
    result_data: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class AgentContext(IdMixin, TimestampMixin, Base):
    """Context an agent keeps between calls."""

    __tablename__ = "agent_contexts"
    __table_args__ = table_args("1.0.0", Index(None, "agent_id", "context_type"))

    agent_id: Mapped[str] = mapped_column(String(128), ForeignKey(AGENT_FK, ondelete="CASCADE"))
    context_type: Mapped[str] = mapped_column(String(64))
    context_data: Mapped[dict[str, Any]]
    expires_at: Mapped[datetime | None] = mapped_column(info=SINCE_2_4)


class AgentMemory(IdMixin, TimestampMixin, Base):
    """Extended, importance-weighted agent memory."""

    __tablename__ = "agent_memory"
    __table_args__ = table_args("1.5.0", Index(None, "agent_id", "memory_type"))

    agent_id: Mapped[str] = mapped_column(String(128), ForeignKey(AGENT_FK, ondelete="CASCADE"))
    memory_type: Mapped[str] = mapped_column(String(64))
    key: Mapped[str | None] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text)
    importance: Mapped[float] = mapped_column(Float, default=0.5)
    access_count: Mapped[int] = mapped_column(default=0)
    last_accessed_at: Mapped[datetime | None]
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
