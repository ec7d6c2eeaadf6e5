"""Category 5 -- conversations and memory: sessions, messages, history,
user memory fragments, semantic memory and the knowledge graph."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
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

USER_FK = "users.id"
SESSION_FK = "conversation_sessions.session_id"


class ConversationSession(IdMixin, TimestampMixin, SoftDeleteMixin, Base):
    """A conversation between a user and an agent."""

    __tablename__ = "conversation_sessions"
    __table_args__ = table_args("1.0.0")

    session_id: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey(USER_FK, ondelete="CASCADE"), index=True)
    agent_type: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default="active")
    context: Mapped[dict[str, Any] | None]
    last_activity_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class ConversationMessage(IdMixin, CreatedAtMixin, Base):
    """One message of a session; ``embedding`` is a packed float32 vector."""

    __tablename__ = "conversation_messages"
    __table_args__ = table_args(
        "1.0.0",
        Index(None, "session_id", "created_at"),
        CheckConstraint("role IN ('user', 'assistant', 'system', 'tool')", name="role"),
    )

    session_id: Mapped[str] = mapped_column(String(64), ForeignKey(SESSION_FK, ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_count: Mapped[int | None]
    meta: Mapped[dict[str, Any] | None]


class ConversationHistory(IdMixin, CreatedAtMixin, Base):
    """Analysed turn of a conversation: intent, sentiment, entities."""

    __tablename__ = "conversation_history"
    __table_args__ = table_args("1.5.0", Index(None, "conversation_id", "turn_index"))

    conversation_id: Mapped[str] = mapped_column(
        String(64), ForeignKey(SESSION_FK, ondelete="CASCADE")
    )
    turn_index: Mapped[int] = mapped_column(default=0)
    user_input: Mapped[str | None] = mapped_column(Text)
    agent_response: Mapped[str | None] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(64))
    sentiment: Mapped[float | None]
    entities: Mapped[dict[str, Any] | None]


class MemoryFragment(IdMixin, TimestampMixin, SoftDeleteMixin, Base):
    """A preference or fact remembered about a user."""

    __tablename__ = "memory_fragments"
    __table_args__ = table_args("1.5.0", Index(None, "user_id", "fragment_type"))

    user_id: Mapped[int] = mapped_column(ForeignKey(USER_FK, ondelete="CASCADE"))
    fragment_type: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    importance: Mapped[float] = mapped_column(Float, default=0.5)
    meta: Mapped[dict[str, Any] | None]
    expires_at: Mapped[datetime | None]


class SemanticMemory(IdMixin, TimestampMixin, Base):
    """Long-term memory with an embedding for similarity search."""

    __tablename__ = "semantic_memory"
    __table_args__ = table_args("1.5.0", Index(None, "user_id", "memory_type"))

    user_id: Mapped[int] = mapped_column(ForeignKey(USER_FK, ondelete="CASCADE"))
    memory_type: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedding_model: Mapped[str | None] = mapped_column(String(128))
    dimensions: Mapped[int | None]
    importance: Mapped[float] = mapped_column(Float, default=0.5)
    access_count: Mapped[int] = mapped_column(default=0)
    last_accessed_at: Mapped[datetime | None]


class KnowledgeGraphNode(IdMixin, TimestampMixin, Base):
    """An entity and its typed relationships to other entities."""

    __tablename__ = "knowledge_graph"
    __table_args__ = table_args("1.5.0", UniqueConstraint("entity_type", "entity_id"))

    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(128))
    entity_name: Mapped[str | None] = mapped_column(String(255))
    relationships: Mapped[list[Any] | None]
    properties: Mapped[dict[str, Any] | None]
    confidence: Mapped[float | None]
