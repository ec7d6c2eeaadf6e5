"""FIFO groups: one message of a group in flight, the next only after the ack; groups
and ungrouped messages flow in parallel; ``correlation_id`` does not serialise; and
under concurrent consumer processes (PostgreSQL ``SKIP LOCKED``, SQLite ``BEGIN
IMMEDIATE``) no message is held twice and no group has two messages in flight."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from cryptotrading import agents
from cryptotrading.agents import Outgoing
from cryptotrading.stores import Stores
from tests.agents._queue_support import (
    RECEIVER,
    SENDER,
    claim,
    fresh,
    ids,
    pair,
    send,
    shift,
    spawn,
)


@pytest.fixture
def engine(app_engine: Engine) -> Engine:
    pair(app_engine)
    return app_engine


def test_one_message_of_a_group_in_flight_next_only_after_the_ack(engine: Engine) -> None:
    g = [send(engine, {"n": i}, group_key="g").message_id for i in range(3)]
    (first,) = claim(engine)
    assert first.message_id == g[0]
    assert claim(engine) == []  # g[1] waits for g[0]
    agents.acknowledge(engine, g[0], first.receipt)
    (second,) = claim(engine)
    assert second.message_id == g[1]
    agents.acknowledge(engine, g[1], second.receipt)
    assert ids(claim(engine)) == [g[2]]


def test_groups_and_ungrouped_messages_flow_in_parallel(engine: Engine) -> None:
    a = [send(engine, {"a": i}, group_key="a").message_id for i in range(2)]
    b = [send(engine, {"b": i}, group_key="b").message_id for i in range(2)]
    loose = [send(engine, {"x": i}).message_id for i in range(2)]
    assert sorted(ids(claim(engine))) == sorted([a[0], b[0], *loose])
    assert claim(engine) == []


def test_correlation_id_does_not_serialise(engine: Engine) -> None:
    same = [send(engine, {"n": i}, correlation_id="run-1").message_id for i in range(3)]
    assert ids(claim(engine)) == same


def test_a_group_is_per_receiver(engine: Engine) -> None:
    agents.register_agent(engine, "other", "consumer")
    agents.connect_agents(engine, SENDER, "other")
    mine = send(engine, group_key="g")
    theirs = agents.send_message(engine, SENDER, "other", {}, group_key="g")
    assert ids(claim(engine)) == [mine.message_id]
    assert ids(agents.claim_messages(engine, "other")) == [theirs.message_id]


def test_a_nack_with_backoff_holds_the_group(engine: Engine) -> None:
    head, tail = (send(engine, {"n": i}, group_key="g").message_id for i in range(2))
    loose = send(engine).message_id
    (got, free) = claim(engine)
    assert (got.message_id, free.message_id) == (head, loose)
    agents.nack(engine, head, got.receipt, reason="retry later", delay_seconds=3600)
    assert claim(engine) == []  # head is pending with a backoff: tail still waits
    shift(engine, head, not_before=-0.001)
    (again,) = claim(engine)
    assert again.message_id == head and again.attempts == 2
    agents.acknowledge(engine, head, again.receipt)
    assert ids(claim(engine)) == [tail]


def test_a_lapsed_lease_holds_the_group_until_redelivered(engine: Engine) -> None:
    head, _tail = (send(engine, {"n": i}, group_key="g").message_id for i in range(2))
    claim(engine)
    shift(engine, head, lease_expires_at=-1)
    assert ids(claim(engine)) == [head]  # the head again, never the tail


def test_a_dead_or_expired_head_lets_the_group_go_on(engine: Engine) -> None:
    head = send(engine, {"n": 0}, group_key="g", max_attempts=1).message_id
    mid = send(engine, {"n": 1}, group_key="g", ttl_seconds=60).message_id
    tail = send(engine, {"n": 2}, group_key="g").message_id
    (got,) = claim(engine)
    agents.nack(engine, head, got.receipt, reason="poison")
    assert fresh(engine, head).status == "dead"
    shift(engine, mid, expires_at=-1)
    assert ids(claim(engine)) == [tail]


def test_a_redriven_head_waits_for_the_message_in_flight(engine: Engine) -> None:
    """Regression: a re-driven dead letter was deliverable while a later message of its
    group was in flight (the check only looked at earlier messages)."""
    head = send(engine, {"n": 0}, group_key="g", max_attempts=1).message_id
    mid, _tail = (send(engine, {"n": i}, group_key="g").message_id for i in (1, 2))
    (got,) = claim(engine)
    agents.nack(engine, head, got.receipt, reason="poison")
    (in_flight,) = claim(engine)
    assert in_flight.message_id == mid
    assert agents.redrive(engine, [head]) == 1
    assert claim(engine) == []  # mid is in flight: the group waits
    agents.acknowledge(engine, mid, in_flight.receipt)
    assert ids(claim(engine)) == [head]  # back at its old place: before tail


def test_fifo_wins_over_priority_within_a_group(engine: Engine) -> None:
    low = send(engine, group_key="g", priority=0).message_id
    high = send(engine, group_key="g", priority=9).message_id
    other = send(engine, priority=5).message_id
    assert ids(claim(engine)) == [other, low]
    assert high not in ids(claim(engine))


@pytest.mark.slow
def test_concurrent_consumers_hold_no_message_twice_and_keep_groups_in_order(
    stores: Stores, engine: Engine, tmp_path: Path
) -> None:
    groups: dict[str, list[str]] = {f"g{k}": [] for k in range(3)}
    outgoing = []
    for i in range(8):
        for group in groups:
            outgoing.append(Outgoing(RECEIVER, {"group": group, "i": i}, group_key=group))
        outgoing.append(Outgoing(RECEIVER, {"i": i}))
    sent = agents.send_messages(engine, SENDER, outgoing)
    for message in sent:
        if message.group_key is not None:
            groups[message.group_key].append(message.message_id)
    markers = tmp_path / "markers"
    markers.mkdir()
    start = tmp_path / "go"
    workers = [
        spawn("fifo-consumer", stores.app.url, RECEIVER, str(markers), str(start)) for _ in range(3)
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
    start.touch()
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        reports.append(json.loads(out))
    assert [v for report in reports for v in report["violations"]] == []
    claimed = {m: t for report in reports for m, t in report["claimed"]}
    count = sum(len(report["claimed"]) for report in reports)
    assert count == len(claimed) == len(sent) and set(claimed) == {m.message_id for m in sent}
    assert sum(1 for report in reports if report["claimed"]) >= 2, "consumers interleave"
    final = agents.list_messages(engine, RECEIVER, limit=1000)
    assert {m.status for m in final} == {"processed"} and {m.attempts for m in final} == {1}
    for members in groups.values():  # each claimed after the previous one's ack
        times = [claimed[m] for m in members]
        assert times == sorted(times) and len(set(times)) == len(times)
