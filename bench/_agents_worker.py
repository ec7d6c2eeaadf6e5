"""A consumer process of ``bench_agents.py``, driven by JSON lines on stdin.

    python bench/_agents_worker.py URL

Each command is answered with JSON lines on stdout:

* ``{"op": "consume", "mode": "library"|"naive", "receiver", "batch", "lease"}``:
  answers ``{"ready": true}``, waits for the line ``go``, drains the receiver's
  pending messages and answers ``{"start", "end", "records", "conflicts", "lost"}``;
  a record is ``[message_id, receipt, attempts, claimed_at, acked_at]`` (``time.time``).

  - ``library``: ``claim_messages(limit=batch, lease_seconds=lease)`` then
    ``acknowledge_many`` of the batch, until a claim returns nothing.
  - ``naive``: per message, one transaction: select the oldest pending row, then
    update it to ``processed`` if it is still pending (``conflicts`` counts the
    updates that found it taken by another consumer), until none is pending.

* ``{"op": "listen", "receiver", "count", "wait"}``: answers ``{"ready": true}``,
  then ``count`` times ``receive(limit=1, wait_seconds=wait)`` and answers
  ``{"id", "t"}`` as soon as a message arrives (then acknowledges it); finally
  ``{"done": true}``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from sqlalchemy import Engine, text

from cryptotrading.agents import acknowledge_many, claim_messages, receive
from cryptotrading.common.clock import utcnow
from cryptotrading.db import create_store_engine

SELECT_ONE = text(
    "SELECT id, message_id FROM a2a_messages "
    "WHERE receiver_id = :r AND status = 'pending' ORDER BY id LIMIT 1"
)
MARK_DONE = text(
    "UPDATE a2a_messages SET status = 'processed', processed_at = :now, "
    "attempts = attempts + 1 WHERE id = :id AND status = 'pending'"
)


def emit(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def library(engine: Engine, receiver: str, batch: int, lease: float) -> dict[str, Any]:
    records: list[list[Any]] = []
    lost: list[str] = []
    while claimed := claim_messages(engine, receiver, limit=batch, lease_seconds=lease):
        at = time.time()
        result = acknowledge_many(engine, claimed)
        done = time.time()
        lost.extend(result.lost)
        records.extend([m.message_id, m.receipt, m.attempts, at, done] for m in claimed)
    return {"records": records, "conflicts": 0, "lost": lost}


def naive(engine: Engine, receiver: str) -> dict[str, Any]:
    records: list[list[Any]] = []
    conflicts = 0
    while True:
        with engine.begin() as connection:
            row = connection.execute(SELECT_ONE, {"r": receiver}).first()
            if row is None:
                break
            at = time.time()
            taken = connection.execute(MARK_DONE, {"id": row.id, "now": utcnow()}).rowcount
        if taken:
            records.append([row.message_id, None, 1, at, time.time()])
        else:
            conflicts += 1
    return {"records": records, "conflicts": conflicts, "lost": []}


def consume(engine: Engine, command: dict[str, Any]) -> None:
    emit({"ready": True})
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("expected 'go'")
    start = time.time()
    if command["mode"] == "library":
        result = library(engine, command["receiver"], command["batch"], command["lease"])
    else:
        result = naive(engine, command["receiver"])
    emit({"start": start, "end": time.time(), **result})


def listen(engine: Engine, command: dict[str, Any]) -> None:
    emit({"ready": True})
    for _ in range(command["count"]):
        while not (
            got := receive(engine, command["receiver"], limit=1, wait_seconds=command["wait"])
        ):
            pass
        emit({"id": got[0].message_id, "t": time.time()})
        acknowledge_many(engine, got)
    emit({"done": True})


def main(url: str) -> None:
    engine = create_store_engine(url)
    with engine.connect() as connection:  # connect now, not in the first timed claim
        connection.execute(text("SELECT 1"))
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "consume":
            consume(engine, command)
        elif command["op"] == "listen":
            listen(engine, command)
        else:
            raise SystemExit(f"unknown command {command['op']!r}")
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1])
