"""Claiming messages with a lease (visibility timeout), and returning expired leases
and expired messages to where they belong.

A claim is one transaction: first the receiver's expired leases go back to
``pending`` (or, after their last attempt, to ``dead``) and its expired messages to
``expired``; then the deliverable messages -- ``pending``, ``not_before`` passed, not
expired, and first of their FIFO group (no earlier message of the group is pending or
delivered) -- are taken highest priority first, then oldest, with ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL (concurrent consumers skip each other's rows instead of
waiting) and under SQLite's ``BEGIN IMMEDIATE`` write lock. Each gets a lease until
now + lease seconds, its attempt counter incremented and a fresh receipt: only the
holder of the current receipt can settle it.

A FIFO group has at most one message in flight: a message waits while any message of
its group is ``delivered`` or an earlier one is ``pending`` (a re-driven dead letter
goes first again, but not while a later message of its group is in flight).

Sweep details (issue 13 review): a ``delivered`` message without a lease (rows from
before 2.4.0 with no ``delivered_at``) counts as lapsed; a lapsed message whose TTL
has passed becomes ``expired`` instead of being counted as requeued and then expired;
a lapsed message on its last attempt becomes ``dead``. A lapsed lease is redelivered
at once (no backoff, like an SQS visibility timeout).

Cost (issue 13 benchmark): a claim runs one indexed probe for anything to sweep (the
sweep's UPDATEs only when it finds a row) and one set-based ``UPDATE ... WHERE id IN
(SELECT ... ORDER BY ... LIMIT n FOR UPDATE SKIP LOCKED) RETURNING``: a few statements
per batch, however many messages it takes, and an ordered index scan
(``receiver_id, status, priority DESC, created_at, id``) that stops after *n* rows
whatever the backlog.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from cryptotrading.agents._common import WHERE, read_session
from cryptotrading.agents.policy import DEFAULT_POLICY, QueuePolicy
from cryptotrading.agents.registry import require_agent
from cryptotrading.agents.wakeup import notify
from cryptotrading.common.checks import integer, number
from cryptotrading.common.clock import utcnow
from cryptotrading.common.views import AsDict
from cryptotrading.db import unit_of_work
from cryptotrading.models.agents import A2AMessage

#: ``last_error`` of a delivery whose lease ran out.
LAPSED = "lease expired before the message was acknowledged"


@dataclass(frozen=True)
class SweepResult(AsDict):
    """What a sweep of expired leases and messages changed."""

    requeued: int = 0
    dead: int = 0
    expired: int = 0


def sweep(session: Session, now: datetime, receiver_id: str | None = None) -> SweepResult:
    """Inside the caller's transaction: expired leases back to ``pending`` (``dead``
    after the last attempt), pending messages past ``expires_at`` to ``expired``."""
    mine = [] if receiver_id is None else [A2AMessage.receiver_id == receiver_id]
    lease_over = or_(A2AMessage.lease_expires_at.is_(None), A2AMessage.lease_expires_at <= now)
    lapsed = [A2AMessage.status == "delivered", lease_over, *mine]

    def change(*where: ColumnElement[bool], **values: Any) -> int:
        statement = update(A2AMessage).where(*where).values(**values)
        result = session.execute(statement.execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]

    dead = change(
        *lapsed,
        A2AMessage.attempts >= A2AMessage.max_attempts,
        status="dead",
        lease_expires_at=None,
        dead_lettered_at=now,
        last_error=LAPSED,
    )
    late = change(
        *lapsed,
        A2AMessage.expires_at <= now,
        status="expired",
        lease_expires_at=None,
        last_error=LAPSED + "; then its expiry time passed",
    )
    woken = list(
        session.execute(
            update(A2AMessage)
            .where(*lapsed)
            .values(status="pending", lease_expires_at=None, last_error=LAPSED)
            .returning(A2AMessage.receiver_id)
            .execution_options(synchronize_session=False)
        ).scalars()
    )
    expired = change(
        A2AMessage.status == "pending",
        A2AMessage.expires_at <= now,
        *mine,
        status="expired",
        last_error="expired before it was delivered",
    )
    if woken and receiver_id is None:
        notify(session, set(woken))
    return SweepResult(len(woken), dead, late + expired)


def requeue_expired(engine: Engine) -> SweepResult:
    """Sweep every receiver (the ``agents`` job of ``ops run``): a consumer killed
    while holding messages loses nothing once its leases pass."""
    with unit_of_work(engine, WHERE) as session:
        return sweep(session, utcnow())


def _deliverable(receiver_id: str, now: datetime):  # type: ignore[no-untyped-def]
    other = aliased(A2AMessage)
    blocked = exists().where(
        other.receiver_id == A2AMessage.receiver_id,
        other.group_key == A2AMessage.group_key,
        or_(
            other.status == "delivered",
            and_(other.status == "pending", other.id < A2AMessage.id),
        ),
    )
    return and_(
        A2AMessage.receiver_id == receiver_id,
        A2AMessage.status == "pending",
        or_(A2AMessage.not_before.is_(None), A2AMessage.not_before <= now),
        or_(A2AMessage.expires_at.is_(None), A2AMessage.expires_at > now),
        or_(A2AMessage.group_key.is_(None), ~blocked),
    )


def _anything_to_sweep(session: Session, receiver_id: str, now: datetime) -> bool:
    """Whether the receiver has a lapsed lease or an expired pending message (two
    indexed probes: the sweep's UPDATEs are skipped when both find nothing)."""
    lapsed = select(A2AMessage.id).where(
        A2AMessage.receiver_id == receiver_id,
        A2AMessage.status == "delivered",
        or_(A2AMessage.lease_expires_at.is_(None), A2AMessage.lease_expires_at <= now),
    )
    expired = select(A2AMessage.id).where(
        A2AMessage.receiver_id == receiver_id,
        A2AMessage.status == "pending",
        A2AMessage.expires_at <= now,
    )
    return any(session.scalar(probe.limit(1)) is not None for probe in (lapsed, expired))


def claim_in(
    session: Session,
    receiver_id: str,
    *,
    limit: int,
    lease_seconds: float,
    now: datetime,
) -> list[A2AMessage]:
    """The claim of :func:`claim_messages` inside the caller's transaction."""
    if _anything_to_sweep(session, receiver_id, now):
        sweep(session, now, receiver_id)
    chosen = (
        select(A2AMessage.id)
        .where(_deliverable(receiver_id, now))
        .order_by(A2AMessage.priority.desc(), A2AMessage.created_at, A2AMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # SQLite: BEGIN IMMEDIATE already serialises
    )
    taken = session.scalars(
        update(A2AMessage)
        .where(A2AMessage.id.in_(chosen))
        .values(
            status="delivered",
            attempts=A2AMessage.attempts + 1,
            delivered_at=now,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            receipt=str(uuid.uuid4()),
        )
        .returning(A2AMessage)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    # RETURNING order is unspecified: deliver in claim order.
    return sorted(taken, key=lambda m: (-m.priority, m.created_at, m.id))


def claim_messages(
    engine: Engine,
    receiver_id: str,
    *,
    limit: int = 10,
    lease_seconds: float | None = None,
    policy: QueuePolicy = DEFAULT_POLICY,
) -> list[A2AMessage]:
    """Lease up to *limit* deliverable messages of *receiver_id* (see the module doc).
    Concurrent consumers never hold the same message; an unacknowledged message is
    delivered again after its lease (at-least-once delivery)."""
    limit = integer(limit, "limit", low=1, high=10_000)
    lease = number(
        policy.lease_seconds if lease_seconds is None else lease_seconds,
        "lease seconds",
        low=0.001,
        high=7 * 86_400,
    )
    with unit_of_work(engine, WHERE) as session:
        require_agent(session, receiver_id, active=False)
        return claim_in(session, receiver_id, limit=limit, lease_seconds=lease, now=utcnow())


def next_wake(engine: Engine, receiver_id: str, now: datetime) -> datetime | None:
    """The soonest time a message of *receiver_id* becomes deliverable without a new
    send: a delay or backoff ending, or a lease expiring."""
    with read_session(engine) as session:
        delayed = session.scalar(
            select(A2AMessage.not_before)
            .where(
                A2AMessage.receiver_id == receiver_id,
                A2AMessage.status == "pending",
                A2AMessage.not_before > now,
            )
            .order_by(A2AMessage.not_before)
            .limit(1)
        )
        leased = session.scalar(
            select(A2AMessage.lease_expires_at)
            .where(A2AMessage.receiver_id == receiver_id, A2AMessage.status == "delivered")
            .order_by(A2AMessage.lease_expires_at)
            .limit(1)
        )
    times = [t for t in (delayed, leased) if t is not None]
    return min(times) if times else None
