"""Consumer processes for the kill -9 trials (``test_consumer_kill.py``), from a fork server.

    python -m tests.agents._kill_consumer        (from the repository root)

Importing the library costs 1-2 s of CPU, more than a trial; this process pays it once
and forks a real consumer process per request, which the test kills with SIGKILL by
its pid. Protocol, one line each: stdin ``RECEIVER URL STOP_FILE SEED`` -> stdout
``started PID``; at the end of stdin the server waits for its children and prints
``exited PID CODE`` for each (``CODE``: exit status, or minus the killing signal).

A consumer long-polls ``receive(limit=3)`` and runs :func:`cryptotrading.agents.process`
on each message, with :func:`handler`, until ``STOP_FILE`` exists. Its output goes to
the server's stderr.
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, configure_mappers

from cryptotrading.agents import QueuePolicy, process, receive
from cryptotrading.db import create_store_engine
from cryptotrading.errors import LeaseLostError
from cryptotrading.models.agents import A2AMessage, AgentMemory

#: Short leases and retries so a trial lasts about a second; the senders use it too.
POLICY = QueuePolicy(
    lease_seconds=0.4, max_attempts=10, backoff_base_seconds=0.02, backoff_max_seconds=0.1
)
#: A poison message (its handler always fails) is dead after this many deliveries.
POISON_ATTEMPTS = 3
#: ``agent_memory.memory_type`` of the handler's side effect.
EFFECT = "kill-trial-effect"


def handler(rng: random.Random) -> Any:
    """A handler that "works" 5-25 ms inside the transaction, then writes its side
    effect: an ``agent_memory`` row keyed by the message id, whose content is the
    message's idempotency key (or empty). A ``{"poison": true}`` payload raises."""

    def handle(session: Session, message: A2AMessage) -> dict[str, Any]:
        if message.payload.get("poison"):
            raise RuntimeError("poison message")
        time.sleep(rng.uniform(0.005, 0.025))
        session.add(
            AgentMemory(
                agent_id=message.receiver_id,
                memory_type=EFFECT,
                key=message.message_id,
                content=message.idempotency_key or "",
                importance=0.5,
                access_count=0,
            )
        )
        return {"n": message.payload.get("n")}

    return handle


def consume(receiver: str, url: str, stop_file: str, seed: int) -> None:
    """Receive and process until *stop_file* exists (or a SIGKILL)."""
    engine = create_store_engine(url)
    handle = handler(random.Random(seed))
    stop = Path(stop_file)
    while not stop.exists():
        for message in receive(engine, receiver, limit=3, wait_seconds=0.1, policy=POLICY):
            with contextlib.suppress(LeaseLostError):  # its lease passed, another has it
                process(engine, message, handle, policy=POLICY)
    engine.dispose()


def child(line: str) -> None:
    """The forked consumer: never returns."""
    code = 0
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # the server's stdin and stdout stay the server's
        os.dup2(2, 1)
        receiver, url, stop_file, seed = line.split()
        consume(receiver, url, stop_file, int(seed))
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    import psycopg  # noqa: F401 -- the PostgreSQL driver, imported once here too

    configure_mappers()  # what the first query of each child would do otherwise
    gc.freeze()  # children do not copy the server's pages when they collect
    children: list[int] = []
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            child(line)
        children.append(pid)
        print(f"started {pid}", flush=True)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        print(f"exited {pid} {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    serve()
