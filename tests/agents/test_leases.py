"""Leases, receipts, ack / nack, backoff, attempts and dead letters by lease expiry or
by nack -- on both backends. Time is moved with ``shift``, never slept through."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from cryptotrading import agents
from cryptotrading.agents import QueuePolicy
from cryptotrading.common.clock import utcnow
from cryptotrading.errors import ConflictError, LeaseLostError, NotFoundError, ValidationError
from tests.agents._queue_support import claim, fresh, ids, pair, rows, send, shift


@pytest.fixture
def engine(app_engine: Engine) -> Engine:
    pair(app_engine)
    return app_engine


def test_claim_leases_and_ack_needs_the_receipt(engine: Engine) -> None:
    sent = send(engine, {"n": 1})
    before = utcnow()
    (got,) = claim(engine, lease_seconds=60)
    assert got.message_id == sent.message_id and got.status == "delivered"
    assert got.attempts == 1 and got.receipt and len(got.receipt) == 36
    assert got.lease_expires_at is not None
    assert before + timedelta(seconds=59) < got.lease_expires_at <= utcnow() + timedelta(seconds=60)
    assert claim(engine) == []  # leased: nobody else gets it
    with pytest.raises(LeaseLostError):
        agents.acknowledge(engine, got.message_id, "not-the-receipt")
    done = agents.acknowledge(engine, got.message_id, got.receipt)
    assert done.status == "processed" and done.processed_at and done.lease_expires_at is None
    again = agents.acknowledge(engine, got.message_id, got.receipt)  # idempotent
    assert again.processed_at == done.processed_at
    assert claim(engine) == []


def test_a_batch_of_claims_and_acknowledge_many(engine: Engine) -> None:
    sent = [send(engine, {"n": i}).message_id for i in range(5)]
    batch = claim(engine, limit=3)
    assert ids(batch) == sent[:3] and len({m.receipt for m in batch}) == 1
    (first, *_rest) = batch
    shift(engine, first.message_id, lease_expires_at=-1)
    (again,) = claim(engine, limit=1)  # the lapsed one comes back first: it is oldest
    assert again.message_id == first.message_id and again.attempts == 2
    outcome = agents.acknowledge_many(engine, batch)
    assert outcome.acked == 2 and outcome.lost == [first.message_id]
    assert agents.acknowledge_many(engine, []).acked == 0
    with pytest.raises(ValidationError, match="claimed messages"):
        agents.acknowledge_many(engine, [{"message_id": sent[0]}])  # type: ignore[list-item]


def test_a_stale_receipt_is_refused_once_someone_else_claimed(engine: Engine) -> None:
    sent = send(engine)
    (first,) = claim(engine, lease_seconds=30)
    shift(engine, sent.message_id, lease_expires_at=-1)
    (second,) = claim(engine, lease_seconds=30)
    assert second.attempts == 2 and second.receipt != first.receipt
    before = rows(engine)
    calls: list[Callable[[], object]] = [
        lambda: agents.acknowledge(engine, sent.message_id, first.receipt),
        lambda: agents.nack(engine, sent.message_id, first.receipt, reason="late"),
        lambda: agents.extend_lease(engine, sent.message_id, first.receipt, seconds=60),
    ]
    for call in calls:
        with pytest.raises(LeaseLostError, match="does not name its latest delivery") as info:
            call()
        assert isinstance(info.value, ConflictError) and info.value.hint
    assert rows(engine) == before  # nothing written
    assert agents.acknowledge(engine, sent.message_id, second.receipt).status == "processed"
    with pytest.raises(LeaseLostError):  # the first holder is still refused after the ack
        agents.acknowledge(engine, sent.message_id, first.receipt)


@pytest.mark.parametrize("swept", ["not swept", "swept to pending", "swept to dead"])
def test_a_late_ack_is_accepted_when_nobody_claimed_it_again(engine: Engine, swept: str) -> None:
    """The last receipt stays valid until the next claim: the holder did the work."""
    sent = send(engine, max_attempts=1 if swept == "swept to dead" else 5)
    (got,) = claim(engine)
    shift(engine, sent.message_id, lease_expires_at=-1)
    if swept != "not swept":
        result = agents.requeue_expired(engine)
        expected = "dead" if swept == "swept to dead" else "pending"
        assert fresh(engine, sent.message_id).status == expected
        assert (result.dead, result.requeued) == ((1, 0) if expected == "dead" else (0, 1))
    done = agents.acknowledge(engine, sent.message_id, got.receipt)
    assert done.status == "processed" and done.dead_lettered_at is None
    assert claim(engine) == [] and agents.list_dead_letters(engine) == []


def test_a_late_ack_of_an_expired_message_is_accepted(engine: Engine) -> None:
    sent = send(engine, ttl_seconds=60)
    (got,) = claim(engine)
    shift(engine, sent.message_id, lease_expires_at=-2, expires_at=-1)
    assert agents.requeue_expired(engine).expired == 1
    gone = fresh(engine, sent.message_id)
    assert gone.status == "expired" and "lease expired" in (gone.last_error or "")
    assert agents.acknowledge(engine, sent.message_id, got.receipt).status == "processed"


def test_settling_without_a_receipt_needs_a_delivery(engine: Engine) -> None:
    sent = send(engine)
    with pytest.raises(ConflictError, match="pending, not delivered"):
        agents.acknowledge(engine, sent.message_id)
    with pytest.raises(ConflictError, match="pending, not delivered"):
        agents.nack(engine, sent.message_id, reason="x")
    claim(engine)
    assert agents.acknowledge(engine, sent.message_id).status == "processed"
    assert agents.acknowledge(engine, sent.message_id).status == "processed"
    with pytest.raises(NotFoundError, match="does not exist"):
        agents.acknowledge(engine, "no-such-message")


def test_nack_after_ack_is_a_conflict(engine: Engine) -> None:
    sent = send(engine)
    (got,) = claim(engine)
    agents.acknowledge(engine, sent.message_id, got.receipt)
    with pytest.raises(ConflictError, match="already processed") as info:
        agents.nack(engine, sent.message_id, got.receipt, reason="too late")
    assert not isinstance(info.value, LeaseLostError)
    assert fresh(engine, sent.message_id).status == "processed"


def test_backoff_is_exponential_with_equal_jitter() -> None:
    policy = QueuePolicy(backoff_base_seconds=2.0, backoff_max_seconds=60.0)
    rng = random.Random(13)
    for attempts, cap in [(0, 2), (1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (50, 60), (10**6, 60)]:
        drawn = [policy.backoff(attempts, rng) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in drawn), (attempts, min(drawn), max(drawn))
        assert max(drawn) - min(drawn) > cap / 4  # jittered: spread over the upper half
    same = [QueuePolicy().backoff(3, random.Random(7)) for _ in range(2)]
    assert same[0] == same[1]  # a seeded rng reproduces the jitter
    assert QueuePolicy(backoff_base_seconds=0).backoff(9) == 0


def test_nack_backs_off_counts_attempts_and_dead_letters(engine: Engine) -> None:
    policy = QueuePolicy(backoff_base_seconds=10.0, backoff_max_seconds=1000.0)
    sent = send(engine, {"n": 1}, max_attempts=3)
    for attempt in (1, 2):
        (got,) = claim(engine)
        assert got.attempts == attempt
        before = utcnow()
        back = agents.nack(
            engine, sent.message_id, got.receipt, reason=f"fail {attempt}", policy=policy
        )
        assert back.status == "pending" and back.last_error == f"fail {attempt}"
        assert back.not_before is not None and back.lease_expires_at is None
        delay = (back.not_before - before).total_seconds()
        cap = 10.0 * 2 ** (attempt - 1)
        assert cap / 2 - 0.001 <= delay <= cap + 1, delay  # backoff(attempt): [cap/2, cap]
        assert claim(engine) == []  # not before the backoff
        shift(engine, sent.message_id, not_before=-0.001)
    (last,) = claim(engine)
    assert last.attempts == 3
    dead = agents.nack(engine, sent.message_id, last.receipt, reason="fail 3")
    assert dead.status == "dead" and dead.dead_lettered_at and dead.last_error == "fail 3"
    assert claim(engine) == []
    assert ids(agents.list_dead_letters(engine, receiver_id="receiver")) == [sent.message_id]


def test_nack_with_an_explicit_delay(engine: Engine) -> None:
    sent = send(engine)
    (got,) = claim(engine)
    back = agents.nack(engine, sent.message_id, got.receipt, reason="later", delay_seconds=0)
    assert back.status == "pending"
    (again,) = claim(engine)  # delay 0: deliverable at once
    assert again.attempts == 2
    with pytest.raises(ValidationError, match="delay"):
        agents.nack(engine, sent.message_id, again.receipt, reason="x", delay_seconds=-1)
    with pytest.raises(ValidationError, match="reason"):
        agents.nack(engine, sent.message_id, again.receipt, reason="  ")


def test_lease_expiry_on_the_last_attempt_dead_letters(engine: Engine) -> None:
    sent = send(engine, max_attempts=2)
    for attempt in (1, 2):
        (got,) = claim(engine)
        assert got.attempts == attempt
        shift(engine, sent.message_id, lease_expires_at=-1)
    assert claim(engine) == []  # the claim's sweep dead-letters it
    dead = fresh(engine, sent.message_id)
    assert dead.status == "dead" and dead.attempts == 2
    assert dead.last_error == "lease expired before the message was acknowledged"
    assert dead.dead_lettered_at is not None and dead.lease_expires_at is None


def test_extend_lease_keeps_the_delivery(engine: Engine) -> None:
    sent = send(engine)
    (got,) = claim(engine, lease_seconds=1)
    longer = agents.extend_lease(engine, sent.message_id, got.receipt, seconds=600)
    assert longer.lease_expires_at is not None
    assert longer.lease_expires_at > utcnow() + timedelta(seconds=590)
    assert agents.requeue_expired(engine).requeued == 0
    shift(engine, sent.message_id, lease_expires_at=-1)
    agents.requeue_expired(engine)
    with pytest.raises(LeaseLostError, match="lease has passed"):  # back in the queue
        agents.extend_lease(engine, sent.message_id, got.receipt, seconds=60)
    with pytest.raises(ValidationError, match="lease seconds"):
        agents.extend_lease(engine, sent.message_id, got.receipt, seconds=0)


def test_a_late_nack_by_the_last_holder(engine: Engine) -> None:
    policy = QueuePolicy(backoff_base_seconds=100.0)
    requeued = send(engine)
    dead = send(engine, max_attempts=1)
    first, second = claim(engine)
    for message in (requeued, dead):
        shift(engine, message.message_id, lease_expires_at=-1)
    assert agents.requeue_expired(engine).as_dict() == {"requeued": 1, "dead": 1, "expired": 0}
    back = agents.nack(engine, requeued.message_id, first.receipt, reason="late", policy=policy)
    assert back.status == "pending" and back.last_error == "late" and back.attempts == 1
    assert back.not_before is not None and back.not_before > utcnow()  # backed off
    still = agents.nack(engine, dead.message_id, second.receipt, reason="late too")
    assert still.status == "dead" and still.last_error == "late too"


def test_a_lapsed_lease_not_yet_swept_is_still_the_holders(engine: Engine) -> None:
    sent = send(engine)
    (got,) = claim(engine)
    shift(engine, sent.message_id, lease_expires_at=-1)
    renewed = agents.extend_lease(engine, sent.message_id, got.receipt, seconds=60)
    assert renewed.status == "delivered" and renewed.attempts == 1
    assert claim(engine) == []  # the renewed lease holds
    shift(engine, sent.message_id, lease_expires_at=-1)
    assert agents.acknowledge(engine, sent.message_id).status == "processed"  # no receipt


def test_a_deactivated_agent_still_drains_its_queue(engine: Engine) -> None:
    sent = send(engine)
    agents.deactivate_agent(engine, "receiver")
    with pytest.raises(NotFoundError, match="deactivated"):
        send(engine)
    (got,) = claim(engine)
    assert got.message_id == sent.message_id
    assert agents.acknowledge(engine, sent.message_id, got.receipt).status == "processed"
