"""Conversations, fragments, semantic search and the knowledge graph on both backends."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cryptotrading.common import vectors as embeddings
from cryptotrading.common.clock import utcnow
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.models.memory import (
    ConversationHistory,
    ConversationMessage,
    ConversationSession,
    KnowledgeGraphNode,
    MemoryFragment,
    SemanticMemory,
)
from cryptotrading.services import memory
from tests.helpers import count_rows, make_user


def test_session_messages_and_embedding_round_trip(app_engine: Engine, user_id: int) -> None:
    conversation = memory.start_session(app_engine, user_id, "trader", title="BTC plan")
    vector = np.array([0.25, -1.5, 3.0], dtype=np.float64)
    memory.add_message(
        app_engine,
        conversation.session_id,
        "user",
        "Should I buy BTC?",
        embedding=vector,
        token_count=5,
    )
    memory.add_message(app_engine, conversation.session_id, "assistant", "Wait for the dip.")
    messages = memory.session_messages(app_engine, conversation.session_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    stored = messages[0].embedding
    assert stored == vector.astype("<f4").tobytes()
    assert np.array_equal(embeddings.unpack(stored), vector.astype(np.float32))
    assert [
        m.content for m in memory.session_messages(app_engine, conversation.session_id, limit=1)
    ] == ["Wait for the dip."]
    assert [s.session_id for s in memory.sessions_of(app_engine, user_id)] == [
        conversation.session_id
    ]
    ended = memory.end_session(app_engine, conversation.session_id)
    assert ended.status == "ended" and ended.ended_at is not None
    with pytest.raises(ValidationError, match="ended"):
        memory.add_message(app_engine, conversation.session_id, "user", "hello?")
    assert count_rows(app_engine, ConversationMessage) == 2


def test_bad_messages_write_nothing(app_engine: Engine, user_id: int) -> None:
    conversation = memory.start_session(app_engine, user_id, "trader")
    sid = conversation.session_id
    bad = [
        (lambda: memory.add_message(app_engine, sid, "robot", "x"), ValidationError),
        (lambda: memory.add_message(app_engine, sid, "user", ""), ValidationError),
        (lambda: memory.add_message(app_engine, sid, "user", "x", embedding=[]), ValidationError),
        (
            lambda: memory.add_message(app_engine, sid, "user", "x", embedding=[[1.0]]),
            ValidationError,
        ),
        (
            lambda: memory.add_message(app_engine, sid, "user", "x", embedding=["a"]),
            ValidationError,
        ),
        (lambda: memory.add_message(app_engine, sid, "user", "x", token_count=-1), ValidationError),
        (lambda: memory.add_message(app_engine, "nope", "user", "x"), NotFoundError),
    ]
    for call, error in bad:
        with pytest.raises(error):
            call()
    assert count_rows(app_engine, ConversationMessage) == 0
    with pytest.raises(NotFoundError, match="user"):
        memory.start_session(app_engine, 999_999, "trader")
    with pytest.raises(ValidationError):
        memory.start_session(app_engine, user_id, "trader", context=["x"])  # type: ignore[arg-type]
    assert count_rows(app_engine, ConversationSession) == 1


def test_history_turns(app_engine: Engine, user_id: int) -> None:
    sid = memory.start_session(app_engine, user_id, "analyst").session_id
    first = memory.record_turn(
        app_engine,
        sid,
        user_input="price?",
        agent_response="42k",
        intent="price_query",
        sentiment=0.1,
        entities={"asset": "BTC"},
    )
    second = memory.record_turn(app_engine, sid, user_input="great", sentiment=0.9)
    assert (first.turn_index, second.turn_index) == (0, 1)
    assert [t.intent for t in memory.history(app_engine, sid)] == ["price_query", None]
    with pytest.raises(ValidationError, match="sentiment"):
        memory.record_turn(app_engine, sid, user_input="x", sentiment=2.0)
    with pytest.raises(ValidationError, match="user input or an agent response"):
        memory.record_turn(app_engine, sid)
    assert count_rows(app_engine, ConversationHistory) == 2


def test_fragments_expire_and_forget(app_engine: Engine, user_id: int) -> None:
    keep = memory.remember_fragment(
        app_engine, user_id, "preference", "risk averse", importance=0.8
    )
    memory.remember_fragment(app_engine, user_id, "fact", "lives in Berlin", importance=0.3)
    memory.remember_fragment(app_engine, user_id, "fact", "old", expires_at=utcnow() - timedelta(1))
    assert [f.content for f in memory.fragments(app_engine, user_id)] == [
        "risk averse",
        "lives in Berlin",
    ]
    assert [
        f.content for f in memory.fragments(app_engine, user_id, fragment_type="preference")
    ] == ["risk averse"]
    memory.forget_fragment(app_engine, keep.id)
    assert [f.content for f in memory.fragments(app_engine, user_id)] == ["lives in Berlin"]
    with pytest.raises(NotFoundError):
        memory.forget_fragment(app_engine, keep.id)
    with pytest.raises(ValidationError, match="importance"):
        memory.remember_fragment(app_engine, user_id, "fact", "x", importance=-0.1)
    assert count_rows(app_engine, MemoryFragment) == 3


def test_semantic_search_matches_numpy_cosine(app_engine: Engine, user_id: int) -> None:
    other = make_user(app_engine, "bob")
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(50, 16))
    for i, vector in enumerate(vectors):
        memory.store_memory(
            app_engine,
            user_id,
            "note" if i % 2 else "fact",
            f"memory {i}",
            vector,
            embedding_model="test-16",
        )
    memory.store_memory(app_engine, other, "note", "bob's", vectors[3])
    memory.store_memory(app_engine, user_id, "note", "other dims", [1.0, 2.0])
    query = vectors[3] + rng.normal(scale=0.01, size=16)
    hits = memory.search(app_engine, user_id, query, k=5)
    stored = vectors.astype("<f4").astype(np.float64)
    expected = stored @ query / (np.linalg.norm(stored, axis=1) * np.linalg.norm(query))
    assert [h.content for h in hits] == [f"memory {i}" for i in np.argsort(-expected)[:5]]
    assert hits[0].content == "memory 3" and hits[0].score == pytest.approx(expected[3], abs=1e-6)
    assert all(h.content != "bob's" for h in hits)
    only_facts = memory.search(app_engine, user_id, query, k=50, memory_type="fact")
    assert len(only_facts) == 25 and all(h.memory_type == "fact" for h in only_facts)
    with Session(app_engine) as session:
        row = session.scalars(
            select(SemanticMemory).where(SemanticMemory.content == "memory 3")
        ).one()
        assert row.access_count == 1 and row.dimensions == 16
    assert memory.search(app_engine, user_id, [1.0] * 3) == []
    with pytest.raises(ValidationError, match="zero length"):
        memory.search(app_engine, user_id, [0.0] * 16)
    with pytest.raises(ValidationError, match="k"):
        memory.search(app_engine, user_id, query, k=0)
    with pytest.raises(NotFoundError):
        memory.search(app_engine, 999_999, query)
    with pytest.raises(ValidationError, match="NaN"):
        memory.store_memory(app_engine, user_id, "note", "x", [np.inf, 1.0])
    assert count_rows(app_engine, SemanticMemory) == 52


@pytest.mark.parametrize("k", [1, 3, 7, 40, 200])
def test_ranking_keeps_row_order_on_ties(k: int) -> None:
    """The partial sort gives exactly the stable full sort, ties included."""
    rng = np.random.default_rng(k)
    vectors = rng.integers(-2, 3, size=(150, 4)).astype(np.float32)  # many equal scores
    vectors[vectors.sum(axis=1) == 0] += 1  # no zero vectors
    query = np.array([1.0, 0.5, -1.0, 2.0])
    blobs = [row.tobytes() for row in vectors]
    ranked = memory._rank(blobs, query, float(np.linalg.norm(query)), k)
    scores = (vectors @ query.astype(np.float32)).astype(np.float64) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
    )
    expected = np.argsort(-scores, kind="stable")[:k]
    assert [i for i, _ in ranked] == expected.tolist()
    assert [score for _, score in ranked] == pytest.approx(scores[expected].tolist())


def test_knowledge_graph_upsert_and_relate(app_engine: Engine) -> None:
    memory.upsert_entity(app_engine, "asset", "BTC", entity_name="Bitcoin", properties={"cap": 1})
    memory.upsert_entity(app_engine, "asset", "BTC", properties={"pow": True}, confidence=0.9)
    memory.upsert_entity(app_engine, "exchange", "binance", entity_name="Binance")
    memory.relate(app_engine, ("asset", "BTC"), "listed_on", ("exchange", "binance"))
    node = memory.relate(
        app_engine,
        ("asset", "BTC"),
        "listed_on",
        ("exchange", "binance"),
        properties={"since": 2017},
    )
    assert node.properties == {"cap": 1, "pow": True} and node.entity_name == "Bitcoin"
    assert node.relationships == [
        {
            "relation": "listed_on",
            "target_type": "exchange",
            "target_id": "binance",
            "properties": {"since": 2017},
        }
    ]
    assert memory.get_entity(app_engine, "asset", "BTC").relationships == node.relationships
    assert [n.entity_id for n in memory.related(app_engine, "asset", "BTC")] == ["binance"]
    with pytest.raises(NotFoundError, match="ETH"):
        memory.relate(app_engine, ("asset", "BTC"), "forked_to", ("asset", "ETH"))
    with pytest.raises(ValidationError):
        memory.upsert_entity(app_engine, "asset", "", entity_name="x")
    with pytest.raises(ValidationError, match="confidence"):
        memory.upsert_entity(app_engine, "asset", "ETH", confidence=3)
    assert count_rows(app_engine, KnowledgeGraphNode) == 2
    assert len(memory.get_entity(app_engine, "asset", "BTC").relationships or []) == 1
