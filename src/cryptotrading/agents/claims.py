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
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from cryptotrading.agents._common import WHERE, read_session
from cryptotrading.agents.policy import DEFAULT_POLICY, QueuePolicy
from cryptotrading.agents.registry import require_agent
from cryptotrading.agents.wakeup import notify
from cryptotrading.common.checks import integer, number
from cryptotrading.common.clock import utcnow
from cryptotrading.common.views import AsDict
from cryptotrading.db import unit_of_work
from cryptotrading.models.agents import A2AMessage

#: States a FIFO group's earlier message can be in and still hold the group back.
OPEN = ("pending", "delivered")


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
    lapsed = [A2AMessage.status == "delivered", A2AMessage.lease_expires_at <= now, *mine]
    reason = "lease expired before the message was acknowledged"
    dead = session.execute(
        update(A2AMessage)
        .where(*lapsed, A2AMessage.attempts >= A2AMessage.max_attempts)
        .values(status="dead", lease_expires_at=None, dead_lettered_at=now, last_error=reason)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    requeued = session.execute(
        update(A2AMessage)
        .where(*lapsed)
        .values(status="pending", lease_expires_at=None, last_error=reason)
        .returning(A2AMessage.receiver_id)
        .execution_options(synchronize_session=False)
    ).scalars()
    woken = list(requeued)
    expired = session.execute(
        update(A2AMessage)
        .where(A2AMessage.status == "pending", A2AMessage.expires_at <= now, *mine)
        .values(status="expired", last_error="expired before it was delivered")
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if woken and receiver_id is None:
        notify(session, set(woken))
    return SweepResult(len(woken), int(dead), int(expired))


def requeue_expired(engine: Engine) -> SweepResult:
    """Sweep every receiver (the ``agents`` job of ``ops run``): a consumer killed
    while holding messages loses nothing once its leases pass."""
    with unit_of_work(engine, WHERE) as session:
        return sweep(session, utcnow())


def _deliverable(receiver_id: str, now: datetime):  # type: ignore[no-untyped-def]
    earlier = aliased(A2AMessage)
    blocked = exists().where(
        earlier.receiver_id == A2AMessage.receiver_id,
        earlier.group_key == A2AMessage.group_key,
        earlier.status.in_(OPEN),
        earlier.id < A2AMessage.id,
    )
    return and_(
        A2AMessage.receiver_id == receiver_id,
        A2AMessage.status == "pending",
        or_(A2AMessage.not_before.is_(None), A2AMessage.not_before <= now),
        or_(A2AMessage.expires_at.is_(None), A2AMessage.expires_at > now),
        or_(A2AMessage.group_key.is_(None), ~blocked),
    )


def claim_in(
    session: Session,
    receiver_id: str,
    *,
    limit: int,
    lease_seconds: float,
    now: datetime,
) -> list[A2AMessage]:
    """The claim of :func:`claim_messages` inside the caller's transaction."""
    sweep(session, now, receiver_id)
    query = (
        select(A2AMessage)
        .where(_deliverable(receiver_id, now))
        .order_by(A2AMessage.priority.desc(), A2AMessage.created_at, A2AMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # SQLite: BEGIN IMMEDIATE already serialises
    )
    messages = list(session.scalars(query))
    receipt = str(uuid.uuid4())
    lease = now + timedelta(seconds=lease_seconds)
    for message in messages:
        message.status = "delivered"
        message.attempts += 1
        message.delivered_at = now
        message.lease_expires_at = lease
        message.receipt = receipt
    session.flush()
    return messages


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
