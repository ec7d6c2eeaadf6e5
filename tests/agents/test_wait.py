"""``receive(wait_seconds=...)``: woken by a send from another thread or process
(PostgreSQL ``LISTEN/NOTIFY``; SQLite polls), by a delayed message coming due, by a
lapsed lease and by the ack that frees a FIFO group; ``[]`` after the timeout.

The bounds are functional, not benchmarks: a consumer waiting 30 s for a message sent
after 0.3 s must return it well before the deadline. On PostgreSQL the recheck interval
is raised to 60 s so that only a notification (or a due time the consumer learnt of
through one) can end the wait early.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine

from cryptotrading import agents
from cryptotrading.agents import receiving
from cryptotrading.models.agents import A2AMessage
from cryptotrading.stores import Stores
from tests.agents._queue_support import RECEIVER, SENDER, claim, ids, pair, send, spawn

WAIT = 30.0
BOUND = 10.0  # well before the 30 s deadline


@pytest.fixture
def engine(app_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    pair(app_engine)
    monkeypatch.setattr(receiving, "RECHECK_SECONDS", 60.0)
    return app_engine


class Waiting:
    """A consumer blocked in ``receive`` on a thread; :meth:`result` joins it."""

    def __init__(self, engine: Engine, **options: Any) -> None:
        self.got: list[A2AMessage] | BaseException | None = None
        self.started = time.monotonic()
        self.ended = 0.0
        self.thread = threading.Thread(target=self._run, args=(engine, options))
        self.thread.start()

    def _run(self, engine: Engine, options: dict[str, Any]) -> None:
        try:
            self.got = agents.receive(engine, RECEIVER, wait_seconds=WAIT, **options)
        except BaseException as exc:  # reported by result()
            self.got = exc
        self.ended = time.monotonic()

    def result(self) -> tuple[list[A2AMessage], float]:
        self.thread.join(WAIT + 30)
        assert not self.thread.is_alive()
        assert isinstance(self.got, list), self.got
        return self.got, self.ended - self.started


def _after(seconds: float, action: Callable[[], object]) -> None:
    time.sleep(seconds)
    action()


def test_a_waiting_consumer_is_woken_by_a_send_from_another_thread(engine: Engine) -> None:
    waiting = Waiting(engine)
    holder: list[A2AMessage] = []
    _after(0.3, lambda: holder.append(send(engine, {"n": 1})))
    got, took = waiting.result()
    assert ids(got) == [holder[0].message_id] and got[0].status == "delivered"
    assert took < BOUND, took


def test_a_waiting_consumer_is_woken_by_a_send_from_another_process(
    stores: Stores, engine: Engine
) -> None:
    sender = spawn("send-later", stores.app.url, SENDER, RECEIVER, "0.3")
    assert sender.stdin is not None and sender.stdout is not None
    assert sender.stdout.readline() == "ready\n"
    waiting = Waiting(engine)
    sender.stdin.write("go\n")
    sender.stdin.flush()
    sent = sender.stdout.readline().strip()
    got, took = waiting.result()
    _, err = sender.communicate(timeout=60)
    assert sender.returncode == 0, err
    assert ids(got) == [sent] and took < BOUND, took


def test_receive_returns_nothing_after_the_timeout(engine: Engine) -> None:
    started = time.monotonic()
    assert agents.receive(engine, RECEIVER, wait_seconds=0.4) == []
    assert time.monotonic() - started >= 0.4  # it waited the whole time
    assert agents.receive(engine, RECEIVER) == []  # no wait: at once


def test_receive_returns_at_once_when_a_message_is_there(engine: Engine) -> None:
    sent = send(engine)
    started = time.monotonic()
    assert ids(agents.receive(engine, RECEIVER, wait_seconds=WAIT)) == [sent.message_id]
    assert time.monotonic() - started < BOUND


def test_a_delayed_message_wakes_the_consumer_when_it_is_due(engine: Engine) -> None:
    """Regression (PostgreSQL): a delayed send did not notify, so a consumer already
    waiting learnt of it only at its next recheck (5 s; here 60 s)."""
    waiting = Waiting(engine)
    holder: list[A2AMessage] = []
    _after(0.3, lambda: holder.append(send(engine, delay_seconds=1.0)))
    got, took = waiting.result()
    assert ids(got) == [holder[0].message_id], got
    assert holder[0].not_before is not None and got[0].delivered_at is not None
    assert got[0].delivered_at >= holder[0].not_before  # not before it was due
    assert took < BOUND, took


def test_a_delayed_message_sent_before_the_wait_is_received_when_due(engine: Engine) -> None:
    sent = send(engine, delay_seconds=0.5)
    got = agents.receive(engine, RECEIVER, wait_seconds=WAIT)
    assert ids(got) == [sent.message_id]
    assert sent.not_before is not None and got[0].delivered_at is not None
    assert got[0].delivered_at >= sent.not_before


def test_a_lapsed_lease_wakes_another_consumer(engine: Engine) -> None:
    sent = send(engine)
    (first,) = claim(engine, lease_seconds=0.5)
    got, took = Waiting(engine).result()
    assert ids(got) == [sent.message_id] and got[0].attempts == 2 and took < BOUND
    assert got[0].receipt != first.receipt


def test_the_ack_that_frees_a_group_wakes_a_waiting_consumer(engine: Engine) -> None:
    """Regression (PostgreSQL): the ack of a group's message did not notify, so a
    consumer waiting for the group's next message slept until its recheck."""
    head, tail = (send(engine, {"n": i}, group_key="g") for i in range(2))
    (held,) = claim(engine, lease_seconds=600)
    waiting = Waiting(engine)
    _after(0.3, lambda: agents.acknowledge(engine, head.message_id, held.receipt))
    got, took = waiting.result()
    assert ids(got) == [tail.message_id] and took < BOUND, took


def test_a_nack_wakes_a_waiting_consumer(engine: Engine) -> None:
    sent = send(engine)
    (held,) = claim(engine, lease_seconds=600)
    waiting = Waiting(engine)
    _after(
        0.3,
        lambda: agents.nack(engine, sent.message_id, held.receipt, reason="x", delay_seconds=0),
    )
    got, took = waiting.result()
    assert ids(got) == [sent.message_id] and took < BOUND, took


def test_receive_checks_its_arguments(engine: Engine) -> None:
    from cryptotrading.errors import NotFoundError, ValidationError

    for wait in (-1, float("nan"), 3601, "soon"):
        with pytest.raises(ValidationError, match="wait seconds"):
            agents.receive(engine, RECEIVER, wait_seconds=wait)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="not registered"):
        agents.receive(engine, "ghost", wait_seconds=1)
    with pytest.raises(ValidationError, match="limit"):
        agents.receive(engine, RECEIVER, limit=0, wait_seconds=1)
