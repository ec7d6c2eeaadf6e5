"""The queue at a glance: messages per state, the oldest deliverable one's age,
dead letters, and running workflow executions (for ``health`` and the CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select

from cryptotrading.agents._common import read_session
from cryptotrading.common.clock import as_utc, utcnow
from cryptotrading.common.views import AsDict
from cryptotrading.models.agents import A2AMessage, A2AWorkflowExecution


@dataclass(frozen=True)
class QueueStats(AsDict):
    """Counts of ``a2a_messages`` by status and of running executions."""

    messages: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    oldest_pending_seconds: float | None = None
    running_executions: int = 0


def queue_stats(engine: Engine) -> QueueStats:
    """Read the figures (one read transaction, indexed counts)."""
    now = utcnow()
    with read_session(engine) as session:
        counts = {
            str(status): int(count)
            for status, count in session.execute(
                select(A2AMessage.status, func.count()).group_by(A2AMessage.status)
            )
        }
        oldest = session.scalar(
            select(func.min(func.coalesce(A2AMessage.not_before, A2AMessage.created_at))).where(
                A2AMessage.status == "pending"
            )
        )
        running = session.scalar(
            select(func.count()).where(A2AWorkflowExecution.status == "running")
        )
    age = None
    if oldest is not None:
        age = round(max(0.0, (now - as_utc(oldest)).total_seconds()), 3)
    return QueueStats(counts, counts.get("dead", 0), age, int(running or 0))
