"""Sending and the queue's order: who may send, payload limit, priority, TTL, delayed
delivery, sweeps (on claim and ``requeue_expired``) and dead letters -- both backends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from cryptotrading import agents
from cryptotrading.agents import Outgoing, QueuePolicy
from cryptotrading.common.clock import utcnow
from cryptotrading.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from cryptotrading.settings import Settings
from tests.agents._queue_support import (
    RECEIVER,
    SENDER,
    claim,
    counts,
    fresh,
    ids,
    pair,
    send,
    shift,
    statuses,
)


@pytest.fixture
def engine(app_engine: Engine) -> Engine:
    pair(app_engine)
    return app_engine


# --- who may send --------------------------------------------------------------------------


def test_sending_needs_an_active_connection_unless_messaging_is_open(app_engine: Engine) -> None:
    agents.register_agent(app_engine, "a", "t")
    agents.register_agent(app_engine, "b", "t")
    before = counts(app_engine)
    with pytest.raises(NotFoundError, match="'a' and 'b' are not connected") as info:
        agents.send_message(app_engine, "a", "b", {})
    assert "agents connect a b" in info.value.hint and "OPEN_MESSAGING" in info.value.hint
    assert counts(app_engine) == before
    opened = QueuePolicy(open_messaging=True)
    assert agents.send_message(app_engine, "a", "b", {}, policy=opened).status == "pending"
    agents.connect_agents(app_engine, "b", "a")  # either order
    agents.send_message(app_engine, "a", "b", {})
    agents.disconnect_agents(app_engine, "a", "b")
    with pytest.raises(NotFoundError, match="not connected"):
        agents.send_message(app_engine, "a", "b", {})
    assert agents.send_message(app_engine, "a", "a", {}).receiver_id == "a"  # to itself
    assert QueuePolicy.from_settings(Settings(a2a_open_messaging=True)).open_messaging


@pytest.mark.parametrize("open_messaging", [False, True])
def test_unknown_or_deactivated_agents_are_refused(engine: Engine, open_messaging: bool) -> None:
    policy = QueuePolicy(open_messaging=open_messaging)
    agents.register_agent(engine, "retired", "t")
    agents.connect_agents(engine, SENDER, "retired")
    agents.deactivate_agent(engine, "retired")
    before = counts(engine)
    cases = [
        (SENDER, "ghost", "'ghost' is not registered"),
        ("ghost", RECEIVER, "'ghost' is not registered"),
        (SENDER, "retired", "'retired' is deactivated"),
        ("retired", SENDER, "'retired' is deactivated"),
    ]
    for sender, receiver, message in cases:
        with pytest.raises(NotFoundError, match=message) as info:
            agents.send_message(engine, sender, receiver, {"x": 1}, policy=policy)
        assert "agents register" in info.value.hint
    with pytest.raises(NotFoundError, match="'ghost' is not registered"):  # all or none
        agents.send_messages(
            engine,
            SENDER,
            [Outgoing(RECEIVER, {"n": 1}), Outgoing("ghost", {"n": 2})],
            policy=policy,
        )
    assert counts(engine) == before


def test_payload_size_limit(engine: Engine) -> None:
    policy = QueuePolicy(max_payload_bytes=100)
    filler = "x" * (100 - len('{"f":""}'))
    assert send(engine, {"f": filler}, policy=policy).payload == {"f": filler}  # exactly 100
    before = counts(engine)
    with pytest.raises(ValidationError, match="101 bytes, over the limit of 100") as info:
        send(engine, {"f": filler + "y"}, policy=policy)
    assert "CRYPTOTRADING_A2A_MAX_PAYLOAD_BYTES" in info.value.hint
    with pytest.raises(ValidationError, match="over the limit"):  # bytes, not characters
        send(engine, {"f": "é" * 60}, policy=policy)
    assert counts(engine) == before
    small = QueuePolicy.from_settings(Settings(a2a_max_payload_bytes=10))
    with pytest.raises(ValidationError, match="over the limit of 10"):
        send(engine, {"f": "0123456789"}, policy=small)


def test_a_policy_is_checked_when_made() -> None:
    bad: dict[str, Any]
    for bad in (
        {"lease_seconds": 0},
        {"lease_seconds": float("nan")},
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"backoff_max_seconds": 1e300},
        {"max_payload_bytes": True},
        {"open_messaging": "yes"},
    ):
        with pytest.raises(ValidationError) as info:
            QueuePolicy(**bad)
        assert info.value.hint
    with pytest.raises(ConfigurationError, match="a2a_backoff_max_seconds"):
        QueuePolicy.from_settings(Settings(a2a_backoff_max_seconds=1e12))


# --- order --------------------------------------------------------------------------------


def test_priority_then_age(engine: Engine) -> None:
    low = send(engine, priority=-5)
    first = send(engine)
    high = send(engine, priority=7)
    second = send(engine)
    top = send(engine, priority=1000)
    got = claim(engine, limit=10)
    assert ids(got) == [m.message_id for m in (top, high, first, second, low)]


def test_send_messages_is_one_transaction_in_order(engine: Engine) -> None:
    batch = agents.send_messages(
        engine, SENDER, [Outgoing(RECEIVER, {"n": i}, group_key="g") for i in range(3)]
    )
    assert [m.payload["n"] for m in batch] == [0, 1, 2]
    assert [m.payload["n"] for m in claim(engine)] == [0]  # a group: one at a time
    before = counts(engine)
    with pytest.raises(ValidationError, match="Outgoing"):
        agents.send_messages(engine, SENDER, [Outgoing(RECEIVER, {}), {"receiver_id": "x"}])  # type: ignore[list-item]
    assert counts(engine) == before


# --- TTL and delayed delivery --------------------------------------------------------------


def test_a_message_past_its_ttl_expires_and_is_never_delivered(engine: Engine) -> None:
    short = send(engine, {"n": 1}, ttl_seconds=30)
    kept = send(engine, {"n": 2}, ttl_seconds=3600)
    at = send(engine, {"n": 3}, expires_at=utcnow() + timedelta(seconds=30))
    shift(engine, short.message_id, expires_at=-1)
    shift(engine, at.message_id, expires_at=-1)
    assert ids(claim(engine)) == [kept.message_id]  # the claim's sweep expires the others
    gone = fresh(engine, short.message_id)
    assert gone.status == "expired" and gone.attempts == 0 and gone.delivered_at is None
    assert gone.last_error == "expired before it was delivered"
    assert statuses(engine)[at.message_id] == "expired"
    assert agents.list_dead_letters(engine) == []  # expired is not dead


def test_ttl_and_delay_are_checked(engine: Engine) -> None:
    before = counts(engine)
    with pytest.raises(ValidationError, match="expire before it can be delivered"):
        send(engine, ttl_seconds=5, delay_seconds=10)
    with pytest.raises(ValidationError, match="expire before it can be delivered"):
        send(engine, ttl_seconds=0)
    with pytest.raises(ValidationError, match="expire before it can be delivered"):
        send(engine, expires_at=utcnow() - timedelta(seconds=1))
    with pytest.raises(ValidationError, match="not both"):
        send(engine, ttl_seconds=5, expires_at=utcnow() + timedelta(hours=1))
    with pytest.raises(ValidationError, match="not_before seconds"):
        send(engine, delay_seconds=-1)
    with pytest.raises(ValidationError, match="datetime"):
        send(engine, not_before="2030-01-01")
    assert counts(engine) == before


def test_a_delayed_message_waits_for_its_time(engine: Engine) -> None:
    delayed = send(engine, {"n": 1}, delay_seconds=3600)
    at = send(engine, {"n": 2}, not_before=utcnow() + timedelta(hours=1))
    now = send(engine, {"n": 3}, delay_seconds=0)
    assert ids(claim(engine)) == [now.message_id]
    assert claim(engine) == []
    shift(engine, delayed.message_id, not_before=-0.001)
    assert ids(claim(engine)) == [delayed.message_id]
    shift(engine, at.message_id, not_before=-0.001)
    assert ids(claim(engine)) == [at.message_id]
    naive = send(engine, not_before=(utcnow() - timedelta(seconds=1)).replace(tzinfo=None))
    assert ids(claim(engine)) == [naive.message_id]  # a naive time is UTC


# --- sweeps -------------------------------------------------------------------------------


def test_requeue_expired_sweeps_every_receiver(engine: Engine) -> None:
    agents.register_agent(engine, "other", "consumer")
    agents.connect_agents(engine, SENDER, "other")
    mine = send(engine)
    theirs = agents.send_message(engine, SENDER, "other", {})
    last = send(engine, max_attempts=1)
    ttl = send(engine, ttl_seconds=60)
    claim(engine, limit=3)
    agents.claim_messages(engine, "other")
    for message in (mine, theirs, last):
        shift(engine, message.message_id, lease_expires_at=-1)
    shift(engine, ttl.message_id, lease_expires_at=-1, expires_at=-0.5)
    result = agents.requeue_expired(engine)
    assert result.as_dict() == {"requeued": 2, "dead": 1, "expired": 1}
    assert fresh(engine, mine.message_id).status == "pending"
    assert fresh(engine, theirs.message_id).status == "pending"
    assert fresh(engine, last.message_id).status == "dead"
    assert fresh(engine, ttl.message_id).status == "expired"
    assert agents.requeue_expired(engine).as_dict() == {"requeued": 0, "dead": 0, "expired": 0}


def test_a_claim_sweeps_only_its_own_receiver(engine: Engine) -> None:
    agents.register_agent(engine, "other", "consumer")
    agents.connect_agents(engine, SENDER, "other")
    mine = send(engine)
    theirs = agents.send_message(engine, SENDER, "other", {})
    claim(engine)
    agents.claim_messages(engine, "other")
    shift(engine, mine.message_id, lease_expires_at=-1)
    shift(engine, theirs.message_id, lease_expires_at=-1)
    (again,) = claim(engine)
    assert again.message_id == mine.message_id and again.attempts == 2
    assert again.last_error == "lease expired before the message was acknowledged"
    assert fresh(engine, theirs.message_id).status == "delivered"  # left to its receiver


def test_a_delivered_message_without_a_lease_is_swept(engine: Engine) -> None:
    """Rows from before 2.4.0 without ``delivered_at`` have no lease after the upgrade."""
    sent = send(engine)
    claim(engine)
    shift(engine, sent.message_id, lease_expires_at=None)
    (again,) = claim(engine)
    assert again.message_id == sent.message_id and again.attempts == 2


# --- dead letters -----------------------------------------------------------------------


def _dead(engine: Engine, reason: str, **options: object) -> str:
    sent = send(engine, {"r": reason}, max_attempts=1, **options)
    (got,) = agents.claim_messages(engine, RECEIVER, limit=1)
    assert got.message_id == sent.message_id
    agents.nack(engine, sent.message_id, got.receipt, reason=reason)
    return sent.message_id


def test_dead_letters_are_listed_inspected_and_redriven(engine: Engine) -> None:
    agents.register_agent(engine, "other", "consumer")
    agents.connect_agents(engine, SENDER, "other")
    first = _dead(engine, "boom 1")
    second = _dead(engine, "boom 2", ttl_seconds=600)
    listed = agents.list_dead_letters(engine)
    assert ids(listed) == [second, first]  # newest first
    assert ids(agents.list_dead_letters(engine, receiver_id="other")) == []
    assert ids(agents.list_dead_letters(engine, limit=1)) == [second]
    shown = agents.get_message(engine, first)
    assert (
        shown.status == "dead" and shown.last_error == "boom 1" and shown.payload == {"r": "boom 1"}
    )
    assert agents.redrive(engine, [first]) == 1
    back = fresh(engine, first)
    assert back.status == "pending" and back.attempts == 0 and back.dead_lettered_at is None
    assert back.last_error == "boom 1"  # kept for the record
    shift(engine, second, expires_at=-1)  # redrive drops the expiry, or it would expire now
    assert agents.redrive(engine, receiver_id=RECEIVER) == 1
    assert fresh(engine, second).expires_at is None
    assert agents.redrive(engine) == 0
    got = claim(engine)
    assert sorted(ids(got)) == sorted([first, second]) and {m.attempts for m in got} == {1}


def test_redrive_refuses_what_it_cannot_redrive(engine: Engine) -> None:
    dead = _dead(engine, "boom")
    alive = send(engine).message_id
    with pytest.raises(NotFoundError, match="'nope' does not exist") as info:
        agents.redrive(engine, [dead, "nope"])
    assert "dead-letters list" in info.value.hint
    with pytest.raises(ConflictError, match="is pending, not a dead letter"):
        agents.redrive(engine, [dead, alive])
    with pytest.raises(ValidationError, match="not both"):
        agents.redrive(engine, [dead], receiver_id=RECEIVER)
    with pytest.raises(ValidationError, match="not one string"):
        agents.redrive(engine, dead)
    with pytest.raises(NotFoundError):
        agents.get_message(engine, "nope")
    assert fresh(engine, dead).status == "dead"
    assert agents.redrive(engine, []) == 0
