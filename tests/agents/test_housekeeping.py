"""The agents' housekeeping in ``ops run``: the ``agents`` job returns expired leases
and expires messages; retention keeps dead letters and processed keys inside their
windows and removes them only after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update

from cryptotrading import agents
from cryptotrading.common.clock import utcnow
from cryptotrading.models import A2AMessage, A2AProcessedKey, AgentContext
from cryptotrading.ops import health, retention, scheduler
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, count_rows, invoke, settings_env

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _pair(stores: Stores) -> None:
    engine = stores.engine(stores.app)
    agents.register_agent(engine, "a", "analyst")
    agents.register_agent(engine, "b", "trader")
    agents.connect_agents(engine, "a", "b")


def test_agents_job_requeues_leases_dead_letters_and_expires(stores: Stores) -> None:
    engine = stores.engine(stores.app)
    _pair(stores)
    retry = agents.send_message(engine, "a", "b", {"n": 1})
    last = agents.send_message(engine, "a", "b", {"n": 2}, max_attempts=1)
    stale = agents.send_message(engine, "a", "b", {"n": 3}, ttl_seconds=3600)
    agents.claim_messages(engine, "b", limit=2)
    agents.set_context(engine, "b", "session", {"x": 1}, ttl_seconds=3600)
    past = utcnow() - timedelta(seconds=1)
    with engine.begin() as connection:
        connection.execute(update(A2AMessage).values(lease_expires_at=past))
        connection.execute(
            update(A2AMessage)
            .where(A2AMessage.message_id == stale.message_id)
            .values(expires_at=past)
        )
        connection.execute(update(AgentContext).values(expires_at=past))
    (result,) = scheduler.run_due(stores, only=["agents"])
    assert result.status == "ok", result
    assert result.detail == {"requeued": 1, "dead": 1, "expired": 1, "contexts_purged": 1}
    states = {m.message_id: m for m in agents.list_messages(engine, "b")}
    assert states[retry.message_id].status == "pending"
    assert states[last.message_id].status == "dead"
    assert "lease expired" in (states[last.message_id].last_error or "")
    assert states[stale.message_id].status == "expired"
    assert [m.message_id for m in agents.list_dead_letters(engine)] == [last.message_id]


def _seed_settled(stores: Stores) -> None:
    """Old and recent dead letters, expired messages and processed keys."""
    engine = stores.engine(stores.app)
    _pair(stores)
    old, recent = NOW - timedelta(days=40), NOW - timedelta(hours=1)
    base = {"sender_id": "a", "receiver_id": "b", "message_type": "m", "payload": {}}
    rows = [
        {
            **base,
            "message_id": f"{status}-{age}",
            "status": status,
            "created_at": at,
            "dead_lettered_at": at if status == "dead" else None,
        }
        for status in ("dead", "expired", "pending")
        for age, at in (("old", old), ("recent", recent))
    ]
    keys = [
        {"consumer_id": "b", "idempotency_key": f"k-{age}", "message_id": "x", "processed_at": at}
        for age, at in (("old", old), ("recent", recent))
    ]
    with engine.begin() as connection:
        connection.execute(insert(A2AMessage), rows)
        connection.execute(insert(A2AProcessedKey), keys)


def test_retention_keeps_dead_letters_and_keys_inside_their_window(
    make_settings: SettingsFactory,
) -> None:
    with Stores(make_settings("three")) as stores:
        _seed_settled(stores)
        report = retention.apply_retention(stores, now=NOW)
        engine = stores.engine(stores.app)
        # Dead letters are kept forever by default; keys 7 days.
        assert report.deleted.get("a2a_messages (dead letters)") is None
        assert count_rows(engine, A2AMessage) == 6
        with engine.connect() as connection:
            keys = connection.scalars(select(A2AProcessedKey.idempotency_key)).all()
        assert keys == ["k-recent"]


def test_retention_removes_dead_letters_past_their_window(make_settings: SettingsFactory) -> None:
    with Stores(make_settings("three", retention_dead_letters_days=30)) as stores:
        _seed_settled(stores)
        report = retention.apply_retention(stores, now=NOW)
        assert report.deleted["a2a_messages (dead letters)"] == 2
        with stores.engine(stores.app).connect() as connection:
            left = sorted(connection.scalars(select(A2AMessage.message_id)).all())
        assert left == ["dead-recent", "expired-recent", "pending-old", "pending-recent"]


def test_health_reports_the_queue_and_alerts_on_dead_letters(stores: Stores) -> None:
    engine = stores.engine(stores.app)
    _pair(stores)
    agents.send_message(engine, "a", "b", {"n": 1})
    doomed = agents.send_message(engine, "a", "b", {"n": 2}, max_attempts=1)
    agents.claim_messages(engine, "b", limit=2)
    (first,) = [m for m in agents.list_messages(engine, "b") if m.message_id == doomed.message_id]
    agents.nack(engine, doomed.message_id, first.receipt, reason="cannot parse")
    report = health.check(stores)
    assert report.agents is not None
    assert report.agents["messages"] == {"delivered": 1, "dead": 1}
    assert report.agents["dead_letters"] == 1
    (alert,) = [a for a in report.alerts if a.event_type == "dead_letters"]
    assert alert.severity == "warning" and "dead-letters list" in alert.message
    relaxed = health.check(stores, health.Thresholds(max_dead_letters=1))
    assert not [a for a in relaxed.alerts if a.event_type == "dead_letters"]
    env = settings_env(stores.settings)
    shown = invoke(env, "health", "--max-dead-letters", "1", "--replica-check-rows", "0")
    assert "agent queue: 1 dead, 1 delivered" in shown.stdout
    assert agents.redrive(engine, [doomed.message_id]) == 1
    assert health.check(stores).agents["dead_letters"] == 0  # type: ignore[index]
