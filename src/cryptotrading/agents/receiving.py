"""Receiving: claim now, or wait up to a deadline for a message to arrive.

``receive(..., wait_seconds=30)`` long-polls: it claims; when nothing is deliverable it
waits until a sender wakes it (PostgreSQL ``LISTEN/NOTIFY``: latency is the commit
round-trip, not a poll interval), a delay or lease it knows of ends, or the deadline
passes -- then claims again. On SQLite it polls with a growing interval (10 ms to
0.5 s), see :mod:`cryptotrading.agents.wakeup`.
"""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import Engine

from cryptotrading.agents.claims import claim_messages, next_wake
from cryptotrading.agents.policy import DEFAULT_POLICY, QueuePolicy
from cryptotrading.agents.wakeup import waiter
from cryptotrading.common.checks import number
from cryptotrading.common.clock import utcnow
from cryptotrading.models.agents import A2AMessage

#: Longest single wait on PostgreSQL before claiming again (a missed wake-up costs this).
RECHECK_SECONDS = 5.0


def receive(
    engine: Engine,
    receiver_id: str,
    *,
    limit: int = 10,
    wait_seconds: float = 0.0,
    lease_seconds: float | None = None,
    policy: QueuePolicy = DEFAULT_POLICY,
) -> list[A2AMessage]:
    """Claim up to *limit* messages of *receiver_id*, waiting up to *wait_seconds* for
    the first to arrive; an empty list when none came."""
    wait = number(wait_seconds, "wait seconds", low=0, high=3600)

    def claim() -> list[A2AMessage]:
        return claim_messages(
            engine, receiver_id, limit=limit, lease_seconds=lease_seconds, policy=policy
        )

    messages = claim()
    if messages or wait == 0:
        return messages
    deadline = time.monotonic() + wait
    with waiter(engine, receiver_id) as sleeper:
        while True:
            messages = claim()
            left = deadline - time.monotonic()
            if messages or left <= 0:
                return messages
            now = utcnow()
            wake = next_wake(engine, receiver_id, now)
            until = left if wake is None else (wake - now) / timedelta(seconds=1)
            sleeper.wait(max(0.0, min(left, until + 0.001, RECHECK_SECONDS)))
