"""Agents, messages, workflows, contexts and agent memory on both backends."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from cryptotrading import agents
from cryptotrading.common.clock import utcnow
from cryptotrading.errors import ConflictError, NotFoundError, ValidationError
from cryptotrading.models.agents import (
    A2AAgent,
    A2AConnection,
    A2AMessage,
    A2AWorkflow,
    A2AWorkflowExecution,
    AgentContext,
    AgentMemory,
)
from cryptotrading.stores import Stores
from tests.helpers import count_rows

WORKER = Path(__file__).with_name("claim_worker.py")


@pytest.fixture
def pair(app_engine: Engine) -> tuple[str, str]:
    agents.register_agent(app_engine, "trader-1", "trader", capabilities=["trade", "analyze"])
    agents.register_agent(app_engine, "analyst-1", "analyst", name="Analyst")
    agents.connect_agents(app_engine, "trader-1", "analyst-1")
    return "trader-1", "analyst-1"


def test_register_heartbeat_deactivate(app_engine: Engine) -> None:
    agent = agents.register_agent(
        app_engine, "bot", "trader", capabilities=["trade", "trade", "scan"], config={"risk": 1}
    )
    assert agent.status == "active" and agent.capabilities == ["scan", "trade"]
    first = agent.last_heartbeat_at
    beat = agents.heartbeat(app_engine, "bot")
    assert first is not None and beat >= first
    assert agents.get_agent(app_engine, "bot").last_heartbeat_at == beat
    gone = agents.deactivate_agent(app_engine, "bot")
    assert gone.status == "inactive" and gone.deleted_at is not None
    assert agents.list_agents(app_engine) == []
    assert [a.agent_id for a in agents.list_agents(app_engine, include_inactive=True)] == ["bot"]
    assert count_rows(app_engine, A2AAgent) == 1  # soft delete keeps the row
    with pytest.raises(NotFoundError, match="deactivated"):
        agents.heartbeat(app_engine, "bot")
    again = agents.register_agent(app_engine, "bot", "trader")
    assert again.status == "active" and again.deleted_at is None
    assert count_rows(app_engine, A2AAgent) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"agent_id": "", "agent_type": "x"}, "agent id"),
        ({"agent_id": "a", "agent_type": " "}, "agent type"),
        ({"agent_id": "a" * 129, "agent_type": "x"}, "longer than 128"),
        ({"agent_id": "a", "agent_type": "x", "capabilities": "trade"}, "capabilities"),
        ({"agent_id": "a", "agent_type": "x", "config": [1]}, "JSON object"),
        ({"agent_id": "a", "agent_type": "x", "config": {"v": float("nan")}}, "JSON"),
    ],
)
def test_register_rejects_bad_input(
    app_engine: Engine, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValidationError, match=match) as info:
        agents.register_agent(app_engine, **kwargs)  # type: ignore[arg-type]
    assert info.value.hint
    assert count_rows(app_engine, A2AAgent) == 0


def test_unknown_agent_is_not_found(app_engine: Engine) -> None:
    for call in (
        lambda: agents.heartbeat(app_engine, "ghost"),
        lambda: agents.get_agent(app_engine, "ghost"),
        lambda: agents.deactivate_agent(app_engine, "ghost"),
        lambda: agents.claim_messages(app_engine, "ghost"),
    ):
        with pytest.raises(NotFoundError, match="not registered"):
            call()


def test_connect_agents_idempotent(app_engine: Engine, pair: tuple[str, str]) -> None:
    link = agents.connect_agents(app_engine, *pair, protocol="grpc")
    again = agents.connect_agents(app_engine, pair[1], pair[0], protocol="grpc")
    assert link.id == again.id and link.established_at is not None
    assert count_rows(app_engine, A2AConnection) == 2  # the fixture's "a2a" link and this
    assert [c.id for c in agents.connections_of(app_engine, pair[1])][-1] == link.id
    with pytest.raises(ValidationError, match="itself"):
        agents.connect_agents(app_engine, pair[0], pair[0])
    with pytest.raises(NotFoundError):
        agents.connect_agents(app_engine, pair[0], "ghost")
    assert count_rows(app_engine, A2AConnection) == 2


def test_send_claim_acknowledge(app_engine: Engine, pair: tuple[str, str]) -> None:
    trader, analyst = pair
    low = agents.send_message(
        app_engine, trader, analyst, {"n": 1}, priority=0, correlation_id="c1"
    )
    high = agents.send_message(app_engine, trader, analyst, {"n": 2}, priority=5)
    later_low = agents.send_message(app_engine, trader, analyst, {"n": 3})
    assert len(low.message_id) == 36 and low.status == "pending"
    first = agents.claim_messages(app_engine, analyst, limit=2)
    assert [m.message_id for m in first] == [high.message_id, low.message_id]
    assert all(m.status == "delivered" and m.delivered_at for m in first)
    rest = agents.claim_messages(app_engine, analyst)
    assert [m.message_id for m in rest] == [later_low.message_id]
    assert agents.claim_messages(app_engine, analyst) == []
    with pytest.raises(ConflictError, match="pending, not delivered"):
        fresh = agents.send_message(app_engine, analyst, trader, {"reply": True})
        agents.acknowledge(app_engine, fresh.message_id)
    done = agents.acknowledge(app_engine, high.message_id)
    assert done.status == "processed" and done.processed_at is not None
    assert agents.acknowledge(app_engine, high.message_id).processed_at == done.processed_at
    with pytest.raises(NotFoundError):
        agents.acknowledge(app_engine, "no-such-id")
    statuses = {m.message_id: m.status for m in agents.list_messages(app_engine, analyst)}
    assert statuses[high.message_id] == "processed"
    assert statuses[low.message_id] == "delivered"


def test_send_rejects_bad_input_and_writes_nothing(
    app_engine: Engine, pair: tuple[str, str]
) -> None:
    trader, analyst = pair
    agents.deactivate_agent(app_engine, analyst)
    with pytest.raises(NotFoundError, match="deactivated"):
        agents.send_message(app_engine, trader, analyst, {"x": 1})
    with pytest.raises(NotFoundError, match="not registered"):
        agents.send_message(app_engine, "ghost", trader, {"x": 1})
    with pytest.raises(ValidationError, match="payload"):
        agents.send_message(app_engine, trader, trader, "text")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="priority"):
        agents.send_message(app_engine, trader, trader, {}, priority=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="JSON"):
        agents.send_message(app_engine, trader, trader, {"when": utcnow()})
    assert count_rows(app_engine, A2AMessage) == 0


def test_expired_leases_are_requeued(app_engine: Engine, pair: tuple[str, str]) -> None:
    trader, analyst = pair
    sent = agents.send_message(app_engine, trader, analyst, {"x": 1})
    agents.claim_messages(app_engine, analyst)
    assert agents.requeue_expired(app_engine).requeued == 0
    with Session(app_engine) as session, session.begin():
        past = utcnow() - timedelta(minutes=10)
        session.execute(update(A2AMessage).values(lease_expires_at=past))
    assert agents.requeue_expired(app_engine).requeued == 1
    (again,) = agents.claim_messages(app_engine, analyst)
    assert again.message_id == sent.message_id and again.attempts == 2


@pytest.mark.slow
def test_two_processes_never_claim_the_same_message(
    stores: Stores, app_engine: Engine, pair: tuple[str, str], tmp_path: Path
) -> None:
    trader, analyst = pair
    sent = {
        agents.send_message(app_engine, trader, analyst, {"i": i}).message_id for i in range(200)
    }
    start = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), stores.app.url, analyst, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    start.touch()
    claimed: list[list[str]] = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        claimed.append(json.loads(out))
    first, second = (set(ids) for ids in claimed)
    assert first and second, "both consumers should have taken part"
    assert len(first) == len(claimed[0]) and len(second) == len(claimed[1])
    assert first.isdisjoint(second)
    assert first | second == sent
    assert count_rows(app_engine, A2AMessage) == 200
    assert agents.list_messages(app_engine, analyst, status="pending") == []


def _steps(*names: str) -> dict[str, object]:
    return {"steps": [{"id": name, "agent": "worker"} for name in names]}


def test_workflow_versions_and_executions(app_engine: Engine) -> None:
    wf = agents.define_workflow(app_engine, "rebalance", _steps("a", "b"), name="Rebalance")
    assert wf.version == 1
    again = agents.define_workflow(app_engine, "rebalance", _steps("a", "b"), name="Rebalance")
    assert again.version == 1
    run1 = agents.start_execution(app_engine, "rebalance", {"budget": 100})
    assert run1.workflow_version == 1 and run1.status == "running" and run1.started_at
    changed = agents.define_workflow(app_engine, "rebalance", _steps("a", "b", "c"), name="R")
    assert changed.version == 2
    run2 = agents.start_execution(app_engine, "rebalance")
    assert run2.workflow_version == 2
    assert agents.workflow_version(app_engine, "rebalance", 1).definition == _steps("a", "b")
    shown = agents.show_execution(app_engine, run2.execution_id)
    assert [s["step_id"] for s in shown.steps] == ["a", "b", "c"]
    assert all(s["status"] == "waiting" for s in shown.steps)
    cancelled = agents.cancel_execution(app_engine, run1.execution_id, reason="not needed")
    assert cancelled.status == "cancelled" and cancelled.completed_at
    with pytest.raises(ConflictError, match="already cancelled"):
        agents.cancel_execution(app_engine, run1.execution_id)
    with pytest.raises(NotFoundError):
        agents.cancel_execution(app_engine, "nope")
    with pytest.raises(NotFoundError):
        agents.start_execution(app_engine, "unknown")
    with pytest.raises(ValidationError):
        agents.define_workflow(app_engine, "bad", ["not", "a", "dict"])  # type: ignore[arg-type]
    assert count_rows(app_engine, A2AWorkflow) == 1
    assert count_rows(app_engine, A2AWorkflowExecution) == 2
    assert agents.get_workflow(app_engine, "rebalance").definition == _steps("a", "b", "c")


def test_contexts_expire(app_engine: Engine, pair: tuple[str, str]) -> None:
    trader, _ = pair
    agents.set_context(app_engine, trader, "session", {"step": 1})
    agents.set_context(app_engine, trader, "session", {"step": 2}, ttl_seconds=3600)
    assert agents.get_context(app_engine, trader, "session") == {"step": 2}
    assert count_rows(app_engine, AgentContext) == 1
    agents.set_context(
        app_engine, trader, "scratch", {"x": 1}, expires_at=utcnow() - timedelta(seconds=1)
    )
    assert agents.get_context(app_engine, trader, "scratch") is None
    assert agents.purge_expired_contexts(app_engine) == 1
    with pytest.raises(ValidationError, match="not both"):
        agents.set_context(app_engine, trader, "x", {}, ttl_seconds=5, expires_at=utcnow())
    with pytest.raises(ValidationError, match="ttl_seconds"):
        agents.set_context(app_engine, trader, "x", {}, ttl_seconds=0)
    with pytest.raises(NotFoundError):
        agents.set_context(app_engine, "ghost", "x", {})
    assert count_rows(app_engine, AgentContext) == 1


def test_agent_memory_importance_and_access(app_engine: Engine, pair: tuple[str, str]) -> None:
    trader, _ = pair
    agents.remember(app_engine, trader, "fact", "BTC halving in April", importance=0.9)
    agents.remember(app_engine, trader, "fact", "likes ETH", importance=0.2, key="pref")
    agents.remember(
        app_engine, trader, "fact", "prefers ETH", importance=0.4, key="pref", embedding=[0.1, 0.2]
    )
    assert count_rows(app_engine, AgentMemory) == 2
    found = agents.recall(app_engine, trader, memory_type="fact")
    assert [m.content for m in found] == ["BTC halving in April", "prefers ETH"]
    assert all(m.access_count == 1 and m.last_accessed_at for m in found)
    again = agents.recall(app_engine, trader, min_importance=0.5)
    assert [m.access_count for m in again] == [2]
    with pytest.raises(ValidationError, match="importance"):
        agents.remember(app_engine, trader, "fact", "x", importance=1.5)
    with pytest.raises(ValidationError, match="NaN"):
        agents.remember(app_engine, trader, "fact", "x", embedding=[float("nan")])
    assert count_rows(app_engine, AgentMemory) == 2


ACK_WORKER = Path(__file__).with_name("ack_worker.py")
LEASE = 0.5  # the worker's lease (seconds)


@pytest.mark.slow
def test_consumer_killed_loses_no_message(
    stores: Stores, app_engine: Engine, pair: tuple[str, str]
) -> None:
    """SIGKILL a consumer mid-stream: every message is still there, at most the one in
    flight is left delivered, and once its lease passes a new consumer finishes the rest."""
    trader, analyst = pair
    sent = [
        agents.send_message(app_engine, trader, analyst, {"i": i}).message_id for i in range(150)
    ]
    worker = subprocess.Popen(
        [sys.executable, str(ACK_WORKER), stores.app.url, analyst, str(LEASE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert worker.stdout is not None
    worker.stdout.read(20)  # twenty messages handled: it is mid-stream now
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    statuses = [m.status for m in agents.list_messages(app_engine, analyst, limit=1000)]
    assert len(statuses) == len(sent) == count_rows(app_engine, A2AMessage)
    assert statuses.count("delivered") <= 1 and statuses.count("processed") >= 19
    assert statuses.count("pending") + statuses.count("delivered") + statuses.count(
        "processed"
    ) == len(sent)
    time.sleep(LEASE)
    while batch := agents.claim_messages(app_engine, analyst, limit=50):
        for message in batch:
            agents.acknowledge(app_engine, message.message_id)
    final = agents.list_messages(app_engine, analyst, limit=1000)
    assert {m.message_id for m in final} == set(sent)
    assert all(m.status == "processed" for m in final)
