"""``process``: exactly-once effects over at-least-once delivery -- a redelivery after a
lease expiry or after a consumer killed with SIGKILL inside its handler, a duplicate
idempotency key (also processed concurrently), handler failures -- on both backends."""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from cryptotrading import agents
from cryptotrading.errors import LeaseLostError
from cryptotrading.models import A2AProcessedKey
from cryptotrading.models.agents import A2AMessage, AgentContext
from cryptotrading.stores import Stores
from tests.agents._queue_support import (
    RECEIVER,
    claim,
    effects,
    fresh,
    pair,
    send,
    shift,
    spawn,
    write_effect,
)


@pytest.fixture
def engine(app_engine: Engine) -> Engine:
    pair(app_engine)
    return app_engine


def _keys(engine: Engine) -> list[tuple[str, str, Any]]:
    with engine.connect() as connection:
        found = connection.execute(
            select(
                A2AProcessedKey.idempotency_key, A2AProcessedKey.message_id, A2AProcessedKey.result
            )
        )
        return [tuple(row) for row in found]


def test_process_writes_effect_key_and_ack_together(engine: Engine) -> None:
    sent = send(engine, {"n": 1}, idempotency_key="order-1")
    (got,) = claim(engine)
    outcome = agents.process(engine, got, write_effect)
    assert outcome.as_dict() == {
        "message_id": sent.message_id,
        "status": "processed",
        "result": {"handled": sent.message_id},
        "error": None,
    }
    assert fresh(engine, sent.message_id).status == "processed"
    assert effects(engine) == [sent.message_id]
    assert _keys(engine) == [("order-1", sent.message_id, {"handled": sent.message_id})]
    again = agents.process(engine, got, write_effect)  # the same delivery: a no-op
    assert again.status == "duplicate" and again.result == {"handled": sent.message_id}
    assert effects(engine) == [sent.message_id]


def test_a_duplicate_key_is_acknowledged_with_the_stored_result(engine: Engine) -> None:
    first = send(engine, {"n": 1}, idempotency_key="k")
    second = send(engine, {"n": 2}, idempotency_key="k")  # the sender sent it twice
    unkeyed = send(engine, {"n": 3})
    got = claim(engine)
    outcomes = [agents.process(engine, m, write_effect) for m in got]
    assert [o.status for o in outcomes] == ["processed", "duplicate", "processed"]
    assert outcomes[1].result == {"handled": first.message_id}  # the first one's result
    assert effects(engine) == sorted([first.message_id, unkeyed.message_id])
    assert fresh(engine, second.message_id).status == "processed"


def test_keys_are_per_consumer(engine: Engine) -> None:
    agents.register_agent(engine, "other", "consumer")
    agents.connect_agents(engine, "sender", "other")
    send(engine, idempotency_key="k")
    agents.send_message(engine, "sender", "other", {}, idempotency_key="k")
    for receiver in (RECEIVER, "other"):
        (got,) = agents.claim_messages(engine, receiver)
        assert agents.process(engine, got, write_effect).status == "processed"
    assert len(effects(engine)) == 2


def test_a_redelivery_after_a_lease_expiry_is_processed_once(engine: Engine) -> None:
    sent = send(engine, {"n": 1}, idempotency_key="once")
    (slow,) = claim(engine)
    shift(engine, sent.message_id, lease_expires_at=-1)
    (other,) = claim(engine)
    called: list[str] = []

    def handler(session: Session, message: A2AMessage) -> dict[str, Any]:
        called.append(message.message_id)
        return write_effect(session, message)

    with pytest.raises(LeaseLostError):  # the slow consumer's outcome is discarded
        agents.process(engine, slow, handler)
    assert called == [] and effects(engine) == []
    assert agents.process(engine, other, handler).status == "processed"
    assert effects(engine) == [sent.message_id]
    with pytest.raises(LeaseLostError):
        agents.process(engine, slow, handler)
    assert called == [sent.message_id]


def test_a_late_process_is_accepted_when_nobody_claimed_it_again(engine: Engine) -> None:
    sent = send(engine)
    (slow,) = claim(engine)
    shift(engine, sent.message_id, lease_expires_at=-1)
    assert agents.requeue_expired(engine).requeued == 1
    assert agents.process(engine, slow, write_effect).status == "processed"
    assert effects(engine) == [sent.message_id] and claim(engine) == []


@pytest.mark.parametrize("key", [None, "crash-1"])
def test_a_consumer_killed_inside_its_handler_leaves_no_effect(
    stores: Stores, engine: Engine, key: str | None
) -> None:
    """SIGKILL between the handler's write and the ack: nothing was committed; the
    redelivery (attempt 2) writes the effect once."""
    sent = send(engine, {"n": 1}, idempotency_key=key)
    worker = spawn("hang", stores.app.url, RECEIVER, "300")
    assert worker.stdout is not None
    try:
        assert worker.stdout.readline() == "in-handler\n", worker.stderr
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=60)
    assert worker.returncode == -signal.SIGKILL
    stuck = fresh(engine, sent.message_id)
    assert stuck.status == "delivered" and stuck.attempts == 1
    assert effects(engine) == [] and _keys(engine) == []
    assert claim(engine) == []  # leased to the dead consumer until its lease passes
    shift(engine, sent.message_id, lease_expires_at=-1)
    (again,) = claim(engine)
    assert again.attempts == 2
    assert agents.process(engine, again, write_effect).status == "processed"
    assert effects(engine) == [sent.message_id]
    assert fresh(engine, sent.message_id).status == "processed"


def test_a_failing_handler_rolls_back_and_nacks(engine: Engine) -> None:
    sent = send(engine, {"n": 1}, idempotency_key="k", max_attempts=2)

    def boom(session: Session, message: A2AMessage) -> None:
        write_effect(session, message)
        session.flush()
        raise RuntimeError("exchange down")

    (got,) = claim(engine)
    outcome = agents.process(engine, got, boom)
    assert outcome.status == "failed" and outcome.error == "RuntimeError: exchange down"
    back = fresh(engine, sent.message_id)
    assert back.status == "pending" and back.last_error == "RuntimeError: exchange down"
    assert back.not_before is not None and back.attempts == 1
    assert effects(engine) == [] and _keys(engine) == []  # the key was not kept either
    shift(engine, sent.message_id, not_before=-0.001)
    (last,) = claim(engine)
    assert agents.process(engine, last, boom).status == "failed"
    dead = fresh(engine, sent.message_id)
    assert dead.status == "dead" and dead.last_error == "RuntimeError: exchange down"
    assert effects(engine) == []


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ([1, 2], "handler result must be a JSON object"),
        ({"x": float("nan")}, "not strict JSON"),
        ({"x": "\x00"}, "NUL"),
    ],
)
def test_an_unstorable_result_is_the_handlers_failure(
    engine: Engine, result: object, error: str
) -> None:
    sent = send(engine, idempotency_key="k")
    (got,) = claim(engine)
    outcome = agents.process(engine, got, lambda session, message: result)  # type: ignore[arg-type,return-value]
    assert outcome.status == "failed" and error in (outcome.error or "")
    assert fresh(engine, sent.message_id).status == "pending" and _keys(engine) == []


def test_a_handler_write_refused_by_the_store_is_the_handlers_failure(engine: Engine) -> None:
    """Regression: a write that failed at the flush after the handler returned escaped
    as a store error and left the message delivered until its lease passed."""
    sent = send(engine)

    def orphan(session: Session, message: A2AMessage) -> None:
        session.add(AgentContext(agent_id="no-such-agent", context_type="x", context_data={}))

    (got,) = claim(engine)
    outcome = agents.process(engine, got, orphan)
    assert outcome.status == "failed" and "IntegrityError" in (outcome.error or "")
    assert fresh(engine, sent.message_id).status == "pending"


def _blocked_on_a_lock(engine: Engine) -> bool:
    with engine.connect() as connection:
        waiting = connection.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
        return bool(waiting.scalar())


def test_two_deliveries_of_one_key_processed_at_once_run_one_handler(
    engine: Engine, backend: str
) -> None:
    """Regression: both handlers ran and the second commit failed on the unique key
    (an IntegrityViolationError out of process); now the second waits for the first
    and is a duplicate without running its handler."""
    first_sent = send(engine, {"n": 1}, idempotency_key="k")
    send(engine, {"n": 2}, idempotency_key="k")
    first, second = claim(engine)
    inside, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow(session: Session, message: A2AMessage) -> dict[str, Any]:
        calls.append(message.message_id)
        inside.set()
        assert release.wait(30)
        return write_effect(session, message)

    outcomes: dict[str, Any] = {}

    def run(message: A2AMessage) -> None:
        try:
            outcomes[message.message_id] = agents.process(engine, message, slow)
        except Exception as exc:  # reported below
            outcomes[message.message_id] = exc

    one = threading.Thread(target=run, args=(first,))
    one.start()
    assert inside.wait(30)
    two = threading.Thread(target=run, args=(second,))
    two.start()
    if backend == "postgresql":  # the second waits on the first's uncommitted key
        for _ in range(300):
            if _blocked_on_a_lock(engine):
                break
            two.join(0.05)
        assert _blocked_on_a_lock(engine)
    else:
        two.join(0.3)  # SQLite: waiting for the write lock
    release.set()
    one.join(60)
    two.join(60)
    assert outcomes[first.message_id].status == "processed"
    assert outcomes[second.message_id].status == "duplicate", outcomes[second.message_id]
    assert outcomes[second.message_id].result == {"handled": first_sent.message_id}
    assert calls == [first.message_id] and effects(engine) == [first_sent.message_id]


def test_a_lease_lapsing_during_process_is_not_redelivered(engine: Engine, backend: str) -> None:
    """process() holds the message (PostgreSQL: its row lock; SQLite: the write lock)
    until it commits, so a claim meanwhile waits and then finds it processed: the
    effect happens once even without an idempotency key."""
    sent = send(engine)
    (got,) = claim(engine, lease_seconds=0.2)
    inside, release = threading.Event(), threading.Event()

    def slow(session: Session, message: A2AMessage) -> dict[str, Any]:
        inside.set()
        assert release.wait(30)
        return write_effect(session, message)

    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(agents.process(engine, got, slow)))
    worker.start()
    assert inside.wait(30)
    worker.join(0.4)  # the lease has passed now
    claimed: list[Any] = []
    other = threading.Thread(target=lambda: claimed.append(claim(engine)))
    other.start()
    if backend == "postgresql":  # the claim's sweep waits on the row process() holds
        for _ in range(300):
            if _blocked_on_a_lock(engine):
                break
            other.join(0.05)
        assert _blocked_on_a_lock(engine)
    else:
        other.join(0.3)
    assert other.is_alive()  # waiting, not redelivering
    release.set()
    worker.join(60)
    other.join(60)
    assert outcome[0].status == "processed" and claimed == [[]]
    assert effects(engine) == [sent.message_id]
