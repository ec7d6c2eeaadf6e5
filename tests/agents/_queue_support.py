"""What the queue tests share: agents, moving a message's clock, side effects, row
snapshots, Hypothesis settings -- and the consumer processes of the concurrency and
kill tests (``python -m tests.agents._queue_support MODE ...``, run from the repo root).

Time is moved, not waited for: :func:`shift` sets a message's lease, delay or expiry
relative to now, so a test sees a lease pass without sleeping through it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from cryptotrading import agents
from cryptotrading.common.clock import utcnow
from cryptotrading.db import create_store_engine, unit_of_work
from cryptotrading.models import A2AProcessedKey
from cryptotrading.models.agents import (
    A2AAgent,
    A2AConnection,
    A2AMessage,
    AgentContext,
)
from tests.helpers import ROOT

SENDER, RECEIVER = "sender", "receiver"
#: Tables the queue writes: a refused call leaves their row counts unchanged.
QUEUE_TABLES = (A2AAgent, A2AConnection, A2AMessage, A2AProcessedKey, AgentContext)


def pair(engine: Engine, sender: str = SENDER, receiver: str = RECEIVER) -> tuple[str, str]:
    """Two registered, connected agents."""
    agents.register_agent(engine, sender, "producer")
    agents.register_agent(engine, receiver, "consumer")
    agents.connect_agents(engine, sender, receiver)
    return sender, receiver


def send(engine: Engine, payload: dict[str, Any] | None = None, **options: Any) -> A2AMessage:
    """A message from :data:`SENDER` to :data:`RECEIVER`."""
    return agents.send_message(engine, SENDER, RECEIVER, payload or {}, **options)


def claim(engine: Engine, limit: int = 10, **options: Any) -> list[A2AMessage]:
    """Claim for :data:`RECEIVER`."""
    return agents.claim_messages(engine, RECEIVER, limit=limit, **options)


def ids(messages: Sequence[A2AMessage]) -> list[str]:
    return [m.message_id for m in messages]


def fresh(engine: Engine, message_id: str) -> A2AMessage:
    """The message as stored now."""
    return agents.get_message(engine, message_id)


def shift(engine: Engine, message_id: str, **seconds_from_now: float | None) -> None:
    """Set time columns of a message to now + seconds (negative: in the past; None:
    NULL), e.g. ``shift(engine, id, lease_expires_at=-1)``: its lease passed."""
    now = utcnow()
    values = {
        column: None if seconds is None else now + timedelta(seconds=seconds)
        for column, seconds in seconds_from_now.items()
    }
    with unit_of_work(engine) as session:
        session.execute(
            update(A2AMessage).where(A2AMessage.message_id == message_id).values(**values)
        )


def settle_everything(engine: Engine) -> None:
    """Mark every pending or delivered message processed (a clean queue for the next
    Hypothesis example)."""
    with unit_of_work(engine) as session:
        session.execute(
            update(A2AMessage)
            .where(A2AMessage.status.in_(("pending", "delivered")))
            .values(status="processed")
        )


def statuses(engine: Engine, receiver: str = RECEIVER) -> dict[str, str]:
    """message id -> status of every message of *receiver*."""
    return {m.message_id: m.status for m in agents.list_messages(engine, receiver, limit=10_000)}


def counts(engine: Engine) -> dict[str, int]:
    """Row counts of the tables the queue writes."""
    with engine.connect() as connection:
        return {
            model.__tablename__: int(
                connection.scalar(select(func.count()).select_from(model)) or 0
            )
            for model in QUEUE_TABLES
        }


def rows(engine: Engine) -> list[tuple[Any, ...]]:
    """Every message row, every column: equal before and after means nothing changed."""
    with engine.connect() as connection:
        result = connection.execute(select(A2AMessage.__table__).order_by(A2AMessage.id))
        return [tuple(row) for row in result]


# --- side effects of a handler -----------------------------------------------------------

EFFECT = "effect"


def write_effect(session: Session, message: A2AMessage) -> dict[str, Any]:
    """A handler whose side effect is one ``agent_contexts`` row per call."""
    session.add(
        AgentContext(
            agent_id=message.receiver_id,
            context_type=EFFECT,
            context_data={"message_id": message.message_id, "n": message.payload.get("n")},
        )
    )
    return {"handled": message.message_id}


def effects(engine: Engine) -> list[str]:
    """The message ids whose effect was written, one per row."""
    with engine.connect() as connection:
        data = connection.scalars(
            select(AgentContext.context_data).where(AgentContext.context_type == EFFECT)
        )
        return sorted(str(d["message_id"]) for d in data)


# --- Hypothesis ------------------------------------------------------------------------------

EXAMPLES = int(os.environ.get("CRYPTOTRADING_FUZZ_EXAMPLES", "20"))
RANDOM = os.environ.get("CRYPTOTRADING_FUZZ_RANDOM", "") not in ("", "0")


def hostile_settings(weight: float = 1.0) -> settings:
    """Like the fuzz suite's: derandomized (CI cannot flake) unless
    ``CRYPTOTRADING_FUZZ_RANDOM`` is set; ``CRYPTOTRADING_FUZZ_EXAMPLES`` scales counts."""
    extra: dict[str, Any] = {} if RANDOM else {"database": None, "derandomize": True}
    return settings(
        max_examples=max(1, round(EXAMPLES * weight)),
        deadline=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
        **extra,
    )


# --- consumer processes ----------------------------------------------------------------------


def spawn(mode: str, *args: str) -> subprocess.Popen[str]:
    """``python -m tests.agents._queue_support MODE ARGS`` from the repository root."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.agents._queue_support", mode, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _enter(directory: Path, name: str) -> bool:
    """Create marker *name*; False when it already exists (someone else holds it)."""
    try:
        os.close(os.open(directory / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def fifo_consumer(url: str, receiver: str, markers: str, start: str) -> None:
    """Claim, "work" and acknowledge until the receiver's queue is empty. While it holds a
    message it holds marker files for the message (never released: a message delivered
    twice is seen) and for its group (released just before the ack: two messages of a
    group in flight at once are seen). Says ``ready``, waits for *start*, then prints
    ``{"claimed": [[id, t], ...], "violations": [...]}`` where *t* is
    ``time.monotonic_ns()`` when the claim returned: one clock for all processes on
    Linux, and a group's next claim returns after the previous ack committed, so a
    group's times rise in send order."""
    engine = create_store_engine(url)
    directory = Path(markers)
    agents.get_agent(engine, receiver)  # connected and warm
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while not Path(start).exists():
        time.sleep(0.005)
    claimed: list[tuple[str, int]] = []
    violations: list[str] = []
    idle = 0
    while idle < 400:
        batch = agents.claim_messages(engine, receiver, limit=3, lease_seconds=300)
        if not batch:
            open_ = agents.list_messages(engine, receiver, status="pending", limit=1)
            open_ += agents.list_messages(engine, receiver, status="delivered", limit=1)
            if not open_:
                break
            idle += 1
            time.sleep(0.01)
            continue
        idle = 0
        returned = time.monotonic_ns()
        for message in batch:
            claimed.append((message.message_id, returned))
            if not _enter(directory, "m-" + message.message_id):
                violations.append(f"message {message.message_id} delivered twice")
            group = message.group_key
            if group is not None and not _enter(directory, "g-" + group):
                violations.append(f"group {group}: {message.message_id} while another in flight")
        time.sleep(0.004)  # the work
        for message in batch:
            if message.group_key is not None:
                (directory / ("g-" + message.group_key)).unlink(missing_ok=True)
            agents.acknowledge(engine, message.message_id, message.receipt)
    engine.dispose()
    sys.stdout.write(json.dumps({"claimed": claimed, "violations": violations}))


def hang_in_handler(url: str, receiver: str, lease: str) -> None:
    """Claim one message and process it with a handler that writes its effect, flushes,
    says ``in-handler`` and then hangs: the test kills it with SIGKILL there."""
    engine = create_store_engine(url)
    (message,) = agents.claim_messages(engine, receiver, limit=1, lease_seconds=float(lease))

    def handler(session: Session, current: A2AMessage) -> dict[str, Any]:
        result = write_effect(session, current)
        session.flush()
        sys.stdout.write("in-handler\n")
        sys.stdout.flush()
        time.sleep(600)
        return result

    agents.process(engine, message, handler)


def send_later(url: str, sender: str, receiver: str, delay: str) -> None:
    """Say ``ready`` once connected, wait for a line on stdin, sleep *delay* seconds,
    then send one message and print its id."""
    engine = create_store_engine(url)
    agents.get_agent(engine, sender)  # connected and warm
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    time.sleep(float(delay))
    message = agents.send_message(engine, sender, receiver, {"late": True})
    sys.stdout.write(message.message_id + "\n")
    sys.stdout.flush()


MODES: dict[str, Callable[..., None]] = {
    "fifo-consumer": fifo_consumer,
    "hang": hang_in_handler,
    "send-later": send_later,
}

if __name__ == "__main__":
    MODES[sys.argv[1]](*sys.argv[2:])
