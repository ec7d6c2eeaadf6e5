"""Category 5 -- conversations and memory of users.

* Sessions and messages: :func:`start_session`, :func:`end_session`,
  :func:`add_message` (optional embedding, packed float32), :func:`session_messages`.
* Analysed turns: :func:`record_turn` (intent, sentiment in [-1, 1], entities).
* Memory fragments (preferences, facts): :func:`remember_fragment`,
  :func:`fragments`, :func:`forget_fragment` (soft delete).
* Semantic memory: :func:`store_memory` and :func:`search` -- cosine similarity
  computed with numpy over all of the user's stored embeddings of the query's
  dimension. This is a **brute-force** scan (no vector index): fine up to ~100k
  vectors per user; beyond that use a vector index (pgvector, FAISS).
* Knowledge graph: :func:`upsert_entity`, :func:`relate`, :func:`get_entity`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from cryptotrading.common import vectors as embeddings
from cryptotrading.common.checks import document, integer, number, optional_text, text
from cryptotrading.common.clock import maybe_utc, utcnow
from cryptotrading.db import unit_of_work
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.models.memory import (
    ConversationHistory,
    ConversationMessage,
    ConversationSession,
    KnowledgeGraphNode,
    MemoryFragment,
    SemanticMemory,
)
from cryptotrading.models.users import User
from cryptotrading.services._common import WHERE, read_session

ROLES = ("user", "assistant", "system", "tool")


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or user.deleted_at is not None or not user.is_active:
        raise NotFoundError(
            f"user {user_id!r} does not exist or is deactivated",
            hint="Create the user first (`cryptotrading users create`); list users with "
            "`cryptotrading users list`.",
        )
    return user


def _session(
    session: Session, session_id: str, *, open_only: bool = False, lock: bool = False
) -> ConversationSession:
    query = select(ConversationSession).where(ConversationSession.session_id == session_id)
    found = session.scalar(query.with_for_update() if lock else query)
    if found is None or found.deleted_at is not None:
        raise NotFoundError(
            f"conversation session {session_id!r} does not exist",
            hint="Use the session_id returned by start_session.",
        )
    if open_only and found.status != "active":
        raise ValidationError(
            f"conversation session {session_id} is {found.status}",
            hint="Start a new session; ended sessions take no new messages.",
        )
    return found


# ---------------------------------------------------------------- sessions, messages


def start_session(
    engine: Engine,
    user_id: int,
    agent_type: str,
    *,
    title: str | None = None,
    context: dict[str, Any] | None = None,
) -> ConversationSession:
    """Open a conversation of *user_id* with an agent type; ``session_id`` is a uuid."""
    now = utcnow()
    conversation = ConversationSession(
        session_id=str(uuid.uuid4()),
        agent_type=text(agent_type, "agent type", limit=64),
        title=optional_text(title, "title", limit=255),
        status="active",
        context=document(context, "context"),
        last_activity_at=now,
    )
    with unit_of_work(engine, WHERE) as session:
        conversation.user_id = _user(session, user_id).id
        session.add(conversation)
        session.flush()
        return conversation


def end_session(engine: Engine, session_id: str) -> ConversationSession:
    """Mark a session ``ended`` (idempotent)."""
    with unit_of_work(engine, WHERE) as session:
        conversation = _session(session, session_id)
        if conversation.status != "ended":
            conversation.status = "ended"
            conversation.ended_at = utcnow()
        return conversation


def add_message(
    engine: Engine,
    session_id: str,
    role: str,
    content: str,
    *,
    embedding: Any = None,
    token_count: int | None = None,
    meta: dict[str, Any] | None = None,
) -> ConversationMessage:
    """Append a message to an active session (``role`` user/assistant/system/tool)."""
    if role not in ROLES:
        raise ValidationError(f"unknown role {role!r}", hint=f"Use one of {', '.join(ROLES)}.")
    message = ConversationMessage(
        session_id=session_id,
        role=role,
        content=text(content, "content", limit=10_000_000),
        embedding=None if embedding is None else embeddings.pack(embedding),
        token_count=None if token_count is None else integer(token_count, "token_count", low=0),
        meta=document(meta, "meta"),
        created_at=utcnow(),
    )
    with unit_of_work(engine, WHERE) as session:
        _session(session, session_id, open_only=True).last_activity_at = message.created_at
        session.add(message)
        session.flush()
        return message


def session_messages(
    engine: Engine, session_id: str, *, limit: int | None = None
) -> list[ConversationMessage]:
    """The messages of a session, oldest first (the last *limit* when given)."""
    with read_session(engine) as session:
        _session(session, session_id)
        query = select(ConversationMessage).where(ConversationMessage.session_id == session_id)
        order = (ConversationMessage.created_at.desc(), ConversationMessage.id.desc())
        if limit is not None:
            query = query.limit(integer(limit, "limit", low=1))
        rows = list(session.scalars(query.order_by(*order)))
        return rows[::-1]


def sessions_of(engine: Engine, user_id: int) -> list[ConversationSession]:
    """The sessions of a user, most recently active first."""
    with read_session(engine) as session:
        _user(session, user_id)
        query = select(ConversationSession).where(
            ConversationSession.user_id == user_id, ConversationSession.deleted_at.is_(None)
        )
        order = (ConversationSession.last_activity_at.desc(), ConversationSession.id.desc())
        return list(session.scalars(query.order_by(*order)))


def record_turn(
    engine: Engine,
    session_id: str,
    *,
    user_input: str | None = None,
    agent_response: str | None = None,
    intent: str | None = None,
    sentiment: float | None = None,
    entities: dict[str, Any] | None = None,
) -> ConversationHistory:
    """Record an analysed turn; ``turn_index`` continues the session's numbering."""
    if user_input is None and agent_response is None:
        raise ValidationError(
            "a turn needs a user input or an agent response", hint="Give at least one of them."
        )
    turn = ConversationHistory(
        conversation_id=session_id,
        user_input=user_input,
        agent_response=agent_response,
        intent=optional_text(intent, "intent", limit=64),
        sentiment=None if sentiment is None else number(sentiment, "sentiment", low=-1, high=1),
        entities=document(entities, "entities"),
    )
    with unit_of_work(engine, WHERE) as session:
        # Row lock: concurrent turns of one session get distinct turn indexes.
        _session(session, session_id, lock=True).last_activity_at = utcnow()
        last = session.scalar(
            select(func.max(ConversationHistory.turn_index)).where(
                ConversationHistory.conversation_id == session_id
            )
        )
        turn.turn_index = 0 if last is None else last + 1
        session.add(turn)
        session.flush()
        return turn


def history(engine: Engine, session_id: str) -> list[ConversationHistory]:
    """The analysed turns of a session in order."""
    with read_session(engine) as session:
        _session(session, session_id)
        query = select(ConversationHistory).where(ConversationHistory.conversation_id == session_id)
        return list(session.scalars(query.order_by(ConversationHistory.turn_index)))


# -------------------------------------------------------------------- fragments


def remember_fragment(
    engine: Engine,
    user_id: int,
    fragment_type: str,
    content: str,
    *,
    importance: float = 0.5,
    meta: dict[str, Any] | None = None,
    expires_at: datetime | None = None,
) -> MemoryFragment:
    """Remember a preference or fact about a user (optionally until *expires_at*)."""
    fragment = MemoryFragment(
        fragment_type=text(fragment_type, "fragment type", limit=64),
        content=text(content, "content", limit=1_000_000),
        importance=number(importance, "importance", low=0, high=1),
        meta=document(meta, "meta"),
        expires_at=maybe_utc(expires_at, "expires_at"),
    )
    with unit_of_work(engine, WHERE) as session:
        fragment.user_id = _user(session, user_id).id
        session.add(fragment)
        session.flush()
        return fragment


def fragments(
    engine: Engine, user_id: int, *, fragment_type: str | None = None
) -> list[MemoryFragment]:
    """A user's live fragments (not forgotten, not expired), most important first."""
    now = utcnow()
    query = select(MemoryFragment).where(
        MemoryFragment.user_id == user_id,
        MemoryFragment.deleted_at.is_(None),
        or_(MemoryFragment.expires_at.is_(None), MemoryFragment.expires_at > now),
    )
    if fragment_type is not None:
        query = query.where(MemoryFragment.fragment_type == fragment_type)
    query = query.order_by(MemoryFragment.importance.desc(), MemoryFragment.id.desc())
    with read_session(engine) as session:
        _user(session, user_id)
        return list(session.scalars(query))


def forget_fragment(engine: Engine, fragment_id: int) -> MemoryFragment:
    """Soft-delete a fragment."""
    with unit_of_work(engine, WHERE) as session:
        fragment = session.get(MemoryFragment, fragment_id)
        if fragment is None or fragment.deleted_at is not None:
            raise NotFoundError(
                f"memory fragment {fragment_id} does not exist",
                hint="List the user's fragments to find the id.",
            )
        fragment.soft_delete()
        return fragment


# ------------------------------------------------------------------ semantic memory


@dataclass(frozen=True)
class SearchHit:
    """One semantic-memory match: cosine similarity in [-1, 1]."""

    memory_id: int
    memory_type: str
    content: str
    score: float


def store_memory(
    engine: Engine,
    user_id: int,
    memory_type: str,
    content: str,
    embedding: Any,
    *,
    embedding_model: str | None = None,
    importance: float = 0.5,
) -> SemanticMemory:
    """Store a long-term memory with its embedding (packed little-endian float32)."""
    vector = embeddings.as_vector(embedding)
    memory = SemanticMemory(
        memory_type=text(memory_type, "memory type", limit=64),
        content=text(content, "content", limit=1_000_000),
        embedding=vector.tobytes(),
        embedding_model=optional_text(embedding_model, "embedding model", limit=128),
        dimensions=int(vector.size),
        importance=number(importance, "importance", low=0, high=1),
        access_count=0,
    )
    with unit_of_work(engine, WHERE) as session:
        memory.user_id = _user(session, user_id).id
        session.add(memory)
        session.flush()
        return memory


def search(
    engine: Engine,
    user_id: int,
    query_vector: Any,
    k: int = 5,
    *,
    memory_type: str | None = None,
) -> list[SearchHit]:
    """The *k* memories of *user_id* most similar (cosine) to *query_vector*.

    Brute force: the ids and embeddings of the user's memories of that dimension are
    read in one read transaction and scored with one numpy matrix-vector product; only
    the hits' rows are then loaded, and their ``access_count`` incremented, in a short
    write transaction.
    """
    query = embeddings.as_vector(query_vector, "query vector").astype(np.float64)
    k = integer(k, "k", low=1, high=10_000)
    norm = float(np.linalg.norm(query))
    if norm == 0.0:
        raise ValidationError(
            "query vector has zero length", hint="Cosine similarity needs a non-zero vector."
        )
    statement = select(SemanticMemory.id, SemanticMemory.embedding).where(
        SemanticMemory.user_id == user_id,
        SemanticMemory.dimensions == int(query.size),
        SemanticMemory.embedding.is_not(None),
    )
    if memory_type is not None:
        statement = statement.where(SemanticMemory.memory_type == memory_type)
    with read_session(engine) as session:
        _user(session, user_id)
        rows = session.execute(statement).all()
    if not rows:
        return []
    ranked = _rank([row.embedding for row in rows], query, norm, k)
    ids = [int(rows[i].id) for i, _ in ranked]
    now = utcnow()
    with unit_of_work(engine, WHERE) as session:
        found = {
            m.id: m
            for m in session.scalars(select(SemanticMemory).where(SemanticMemory.id.in_(ids)))
        }
        hits = []
        for (_, score), memory_id in zip(ranked, ids, strict=True):
            memory = found.get(memory_id)
            if memory is None:  # deleted since it was scored
                continue
            memory.access_count += 1
            memory.last_accessed_at = now
            hits.append(SearchHit(memory.id, memory.memory_type, memory.content, score))
        return hits


def _rank(blobs: list[bytes], query: Any, norm: float, k: int) -> list[tuple[int, float]]:
    """(row index, cosine score) of the *k* best rows, best first; ties keep row order."""
    # One buffer, one reshape: no per-row arrays (dimensions are equal by the filter).
    matrix = embeddings.unpack(b"".join(blobs))
    if matrix.size != len(blobs) * query.size:
        raise ValidationError(
            "stored embeddings do not match their recorded dimensions",
            hint="Re-store those memories with store_memory (it records the dimensions).",
        )
    matrix = matrix.reshape(len(blobs), query.size)
    norms = np.linalg.norm(matrix, axis=1).astype(np.float64)
    norms[norms == 0.0] = np.inf  # a zero vector is similar to nothing
    scores = (matrix @ query.astype(np.float32)).astype(np.float64) / (norms * norm)
    if k < len(scores):  # only rows scoring at least the k-th best need sorting
        kth = np.partition(-scores, k - 1)[k - 1]
        candidates = np.flatnonzero(-scores <= kth)
    else:
        candidates = np.arange(len(scores))
    order = candidates[np.argsort(-scores[candidates], kind="stable")][:k]
    return [(int(i), float(scores[i])) for i in order]


# ------------------------------------------------------------------ knowledge graph


def _node(session: Session, entity_type: str, entity_id: str) -> KnowledgeGraphNode | None:
    return session.scalar(
        select(KnowledgeGraphNode).where(
            KnowledgeGraphNode.entity_type == entity_type,
            KnowledgeGraphNode.entity_id == entity_id,
        )
    )


def upsert_entity(
    engine: Engine,
    entity_type: str,
    entity_id: str,
    *,
    entity_name: str | None = None,
    properties: dict[str, Any] | None = None,
    confidence: float | None = None,
) -> KnowledgeGraphNode:
    """Create an entity or update it; *properties* are merged into the stored ones."""
    entity_type = text(entity_type, "entity type", limit=64)
    entity_id = text(entity_id, "entity id", limit=128)
    name = optional_text(entity_name, "entity name", limit=255)
    props = document(properties, "properties")
    score = None if confidence is None else number(confidence, "confidence", low=0, high=1)
    with unit_of_work(engine, WHERE) as session:
        node = _node(session, entity_type, entity_id)
        if node is None:
            node = KnowledgeGraphNode(
                entity_type=entity_type, entity_id=entity_id, relationships=[], properties={}
            )
            session.add(node)
        if name is not None:
            node.entity_name = name
        if props:
            node.properties = {**(node.properties or {}), **props}
        if score is not None:
            node.confidence = score
        session.flush()
        return node


def relate(
    engine: Engine,
    source: tuple[str, str],
    relation: str,
    target: tuple[str, str],
    *,
    properties: dict[str, Any] | None = None,
) -> KnowledgeGraphNode:
    """Add (or update) the edge ``source -relation-> target``; both entities must
    exist. The edge is kept in the source's ``relationships`` list."""
    relation = text(relation, "relation", limit=64)
    props = document(properties, "properties")
    with unit_of_work(engine, WHERE) as session:
        nodes = []
        for entity_type, entity_id in (source, target):
            node = _node(session, entity_type, entity_id)
            if node is None:
                raise NotFoundError(
                    f"entity {entity_type}:{entity_id} is not in the knowledge graph",
                    hint="Add it first with upsert_entity.",
                )
            nodes.append(node)
        edge = {
            "relation": relation,
            "target_type": target[0],
            "target_id": target[1],
            "properties": props or {},
        }
        kept = [
            e
            for e in (nodes[0].relationships or [])
            if (e.get("relation"), e.get("target_type"), e.get("target_id"))
            != (relation, target[0], target[1])
        ]
        nodes[0].relationships = [*kept, edge]  # a new list: the JSON column sees the change
        session.flush()
        return nodes[0]


def get_entity(engine: Engine, entity_type: str, entity_id: str) -> KnowledgeGraphNode:
    with read_session(engine) as session:
        node = _node(session, entity_type, entity_id)
        if node is None:
            raise NotFoundError(
                f"entity {entity_type}:{entity_id} is not in the knowledge graph",
                hint="Add it with upsert_entity.",
            )
        return node


def related(
    engine: Engine, entity_type: str, entity_id: str, *, relation: str | None = None
) -> list[KnowledgeGraphNode]:
    """The entities the given entity points to (optionally through one relation)."""
    node = get_entity(engine, entity_type, entity_id)
    edges = [
        e for e in node.relationships or [] if relation is None or e.get("relation") == relation
    ]
    with read_session(engine) as session:
        found = [_node(session, e["target_type"], e["target_id"]) for e in edges]
        return [n for n in found if n is not None]
