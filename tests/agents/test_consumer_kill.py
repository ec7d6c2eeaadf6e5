"""kill -9 of consumers at random points, 20 trials per backend: every message is
processed exactly once or dead-lettered, none is lost, and each side effect -- and
each idempotency key's -- happens exactly once.

A trial sends 24 messages to a new receiver in one transaction: a third in two FIFO
groups, half in pairs sharing an idempotency key (a sender that sent twice), two
"poison" ones whose handler always fails (``max_attempts`` 3). Two or three consumer
processes (``_kill_consumer``: ``receive`` + ``process`` with a 0.4 s lease, a handler
writing an ``agent_memory`` row in the processing transaction) are started; every
30-250 ms one of them, chosen at random, is killed with SIGKILL and another started,
2-4 times per trial; then the queue must drain. The seed is printed
(``KILL_SEED=... pytest ...`` replays a run) with the counts: kills, redeliveries
(deliveries after the first of processed messages), dead letters, duplicates skipped.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cryptotrading import agents
from cryptotrading.models import A2AProcessedKey
from cryptotrading.models.agents import A2AMessage, AgentMemory
from cryptotrading.stores import Stores
from tests.agents._kill_consumer import EFFECT, POISON_ATTEMPTS, POLICY
from tests.helpers import ROOT

pytestmark = pytest.mark.slow

TRIALS = 20
MESSAGES = 30
PRODUCER = "kill-producer"
TRIAL_SECONDS = 30.0  # a trial that has not drained by then fails


class ForkServer:
    """``python -m tests.agents._kill_consumer``: starts consumers, reports their ends."""

    def __init__(self, log: Path) -> None:
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.agents._kill_consumer"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )
        self.started: list[int] = []

    def start(self, receiver: str, url: str, stop: Path, seed: int) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{receiver} {url} {stop} {seed}\n")
        self.process.stdin.flush()
        word, pid = self.process.stdout.readline().split()
        assert word == "started"
        self.started.append(int(pid))
        return int(pid)

    def finish(self) -> dict[int, int]:
        """Close the server's input; the exit code (or -signal) of every consumer."""
        out, _ = self.process.communicate(timeout=60)  # closes its input
        self.log.close()
        ends = {}
        for line in out.splitlines():
            word, pid, code = line.split()
            assert word == "exited"
            ends[int(pid)] = int(code)
        return ends

    def abort(self) -> None:
        for pid in self.started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.kill()
        self.process.wait()
        self.log.close()


@dataclass
class Totals:
    """What the trials did (printed for the closing note)."""

    trials: int = 0
    messages: int = 0
    kills: int = 0
    kills_while_open: int = 0  # messages were pending or delivered just before
    redeliveries: int = 0
    processed: int = 0
    duplicates: int = 0
    dead_poison: int = 0
    dead_other: int = 0
    seconds: float = 0.0
    killed: list[int] = field(default_factory=list)

    def add(self, other: Totals) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


def outgoing(rng: random.Random, receiver: str) -> list[agents.Outgoing]:
    """The trial's messages; poison ones carry no idempotency key (a key already
    processed would acknowledge them as duplicates without running the handler)."""
    poison = set(rng.sample([n for n in range(MESSAGES) if n % 4 >= 2], 2))
    return [
        agents.Outgoing(
            receiver,
            {"n": n, **({"poison": True} if n in poison else {})},
            group_key=f"g{n % 2}" if n % 3 == 0 else None,
            idempotency_key=f"k{n // 4}" if n % 4 < 2 else None,
            max_attempts=POISON_ATTEMPTS if n in poison else None,
        )
        for n in range(MESSAGES)
    ]


def still_open(engine: Engine, receiver: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(
                select(func.count()).where(
                    A2AMessage.receiver_id == receiver,
                    A2AMessage.status.in_(("pending", "delivered")),
                )
            )
            or 0
        )


def trial(
    engine: Engine, url: str, server: ForkServer, rng: random.Random, number: int, tmp: Path
) -> Totals:
    receiver = f"kill-consumer-{number}"
    agents.register_agent(engine, receiver, "consumer")
    agents.connect_agents(engine, PRODUCER, receiver)
    agents.send_messages(engine, PRODUCER, outgoing(rng, receiver), policy=POLICY)
    stop = tmp / f"stop-{number}"
    live = [
        server.start(receiver, url, stop, rng.randrange(2**31)) for _ in range(rng.choice((2, 3)))
    ]
    totals = Totals(trials=1, messages=MESSAGES)
    budget = rng.randint(2, 4)
    deadline = time.monotonic() + TRIAL_SECONDS
    while (pending := still_open(engine, receiver)) or not totals.kills:
        assert time.monotonic() < deadline, f"trial {number} did not drain"
        time.sleep(rng.uniform(0.02, 0.15))
        if totals.kills < budget:
            victim = live.pop(rng.randrange(len(live)))
            os.kill(victim, signal.SIGKILL)
            totals.killed.append(victim)
            totals.kills += 1
            totals.kills_while_open += pending > 0
            live.append(server.start(receiver, url, stop, rng.randrange(2**31)))
    totals.seconds = time.monotonic() - deadline + TRIAL_SECONDS
    stop.touch()
    check(engine, receiver, totals)
    return totals


def check(engine: Engine, receiver: str, totals: Totals) -> None:
    """Every message processed once (its effect written once, or its key's effect
    written once) or dead-lettered with no effect; nothing pending or delivered."""
    with Session(engine) as session:
        sent = list(session.scalars(select(A2AMessage).where(A2AMessage.receiver_id == receiver)))
    with engine.connect() as connection:
        effects = Counter(
            connection.execute(
                select(AgentMemory.key, AgentMemory.content).where(
                    AgentMemory.agent_id == receiver, AgentMemory.memory_type == EFFECT
                )
            ).all()
        )
        keys = dict(
            connection.execute(
                select(A2AProcessedKey.idempotency_key, A2AProcessedKey.message_id).where(
                    A2AProcessedKey.consumer_id == receiver
                )
            ).all()
        )
    assert len(sent) == MESSAGES
    assert all(count == 1 for count in effects.values()), effects
    effect_of = {message_id: key for message_id, key in effects}
    by_key: dict[str, list[str]] = {}
    for message in sent:
        assert message.status in ("processed", "dead"), (message.message_id, message.status)
        poison = bool(message.payload.get("poison"))
        if message.status == "dead":
            assert message.message_id not in effect_of  # its failed work rolled back
            assert message.last_error
            assert not poison or message.attempts == POISON_ATTEMPTS
            totals.dead_poison += poison
            totals.dead_other += not poison
            continue
        assert not poison, "a poison message cannot be processed"
        totals.processed += 1
        totals.redeliveries += message.attempts - 1
        if message.idempotency_key is None:
            assert effect_of.get(message.message_id) == "", message.message_id
        else:
            by_key.setdefault(message.idempotency_key, []).append(message.message_id)
    for key, message_ids in by_key.items():
        done = [m for m in message_ids if m in effect_of]
        assert len(done) == 1, (key, message_ids, done)  # the key's effect happened once
        assert effect_of[done[0]] == key and keys[key] == done[0]
        totals.duplicates += len(message_ids) - 1
    assert set(effect_of) <= {m.message_id for m in sent}


def test_consumers_killed_at_random_points(
    stores: Stores, app_engine: Engine, tmp_path: Path
) -> None:
    seed = int(os.environ.get("KILL_SEED", time.time()))
    print(f"KILL_SEED={seed}")
    rng = random.Random(seed)
    agents.register_agent(app_engine, PRODUCER, "producer")
    server = ForkServer(tmp_path / "consumers.log")
    totals = Totals()
    try:
        for number in range(TRIALS):
            totals.add(trial(app_engine, stores.app.url, server, rng, number, tmp_path))
    except BaseException:
        server.abort()
        print((tmp_path / "consumers.log").read_text()[-3000:])
        raise
    ends = server.finish()
    log = (tmp_path / "consumers.log").read_text()
    assert set(ends) == set(server.started)
    assert all(ends[pid] == -signal.SIGKILL for pid in totals.killed), ends
    others = {pid: code for pid, code in ends.items() if pid not in totals.killed}
    assert all(code == 0 for code in others.values()), (others, log[-3000:])
    assert "Traceback" not in log, log[-3000:]
    assert totals.kills >= TRIALS  # at least one per trial
    assert totals.redeliveries > 0  # some kills took messages with them
    print(
        f"kill trials ({stores.app.backend}, seed {seed}): {totals.trials} trials in "
        f"{totals.seconds:.0f} s, {totals.messages} messages, {totals.kills} kills "
        f"({totals.kills_while_open} while messages were open), {totals.redeliveries} "
        f"redeliveries, {totals.processed} processed once, {totals.duplicates} duplicates "
        f"skipped by key, {totals.dead_poison} poison dead-lettered, {totals.dead_other} "
        "others dead-lettered"
    )
