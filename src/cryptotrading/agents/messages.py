"""Sending messages (``a2a_messages``): checks, delayed delivery, expiry, FIFO groups
and idempotency keys. A message is ``pending`` until a consumer claims it.

Message states: ``pending`` -> ``delivered`` (leased to one consumer) -> ``processed``
(acknowledged); a negative acknowledgement or an expired lease puts it back to
``pending`` (after a backoff) until ``max_attempts`` deliveries failed, then it is
``dead`` (a dead letter, kept with its last error until re-driven); a pending message
whose ``expires_at`` passes becomes ``expired``.

Checks (issue 13 review): ids and keys are identifiers and payloads JSON without NUL
(:mod:`.registry`'s checks: a NUL used to reach PostgreSQL as a driver error); a
``not_before`` / ``expires_at`` whose UTC form is outside the calendar is a
ValidationError naming it; an item of ``send_messages`` that is not an
:class:`Outgoing` is refused. A delayed message wakes the receiver's waiting consumers
too (they then sleep until its ``not_before``, see :mod:`.receiving`); before, they
learnt of it only at their next 5-second recheck.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from cryptotrading.agents._common import WHERE, read_session
from cryptotrading.agents.policy import DEFAULT_POLICY, QueuePolicy
from cryptotrading.agents.registry import (
    checked_document,
    checked_id,
    optional_id,
    require_agent,
    require_connection,
)
from cryptotrading.agents.wakeup import notify
from cryptotrading.common.checks import integer, number
from cryptotrading.common.clock import maybe_utc, utcnow
from cryptotrading.db import unit_of_work
from cryptotrading.errors import ValidationError
from cryptotrading.models.agents import A2AMessage

MESSAGE_STATUSES = ("pending", "delivered", "processed", "dead", "expired")


@dataclass(frozen=True)
class Outgoing:
    """One message to send (see :func:`send_message` for the fields)."""

    receiver_id: str
    payload: dict[str, Any]
    message_type: str = "message"
    priority: int = 0
    correlation_id: str | None = None
    group_key: str | None = None
    idempotency_key: str | None = None
    ttl_seconds: float | None = None
    expires_at: datetime | None = None
    delay_seconds: float | None = None
    not_before: datetime | None = None
    max_attempts: int | None = None


def _payload(value: Any, policy: QueuePolicy) -> dict[str, Any]:
    payload = checked_document(value, "payload")
    size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    if size > policy.max_payload_bytes:
        raise ValidationError(
            f"payload is {size} bytes, over the limit of {policy.max_payload_bytes}",
            hint="Send a reference (an id, a path) instead of the data, or raise "
            "CRYPTOTRADING_A2A_MAX_PAYLOAD_BYTES.",
        )
    return payload


def _when(
    seconds: float | None, moment: datetime | None, what: str, now: datetime
) -> datetime | None:
    try:
        at = maybe_utc(moment, what)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValidationError(
            f"{what} is outside the calendar in UTC", hint=f"Give {what} as a UTC time."
        ) from None
    if seconds is None:
        return at
    if at is not None:
        raise ValidationError(
            f"give {what} or its seconds, not both", hint="Drop one of the two options."
        )
    return now + timedelta(seconds=number(seconds, f"{what} seconds", low=0, high=10**8))


def _build(sender_id: str, out: Outgoing, policy: QueuePolicy, now: datetime) -> A2AMessage:
    if not isinstance(out, Outgoing):
        raise ValidationError(
            f"a message to send must be an Outgoing, got {type(out).__name__}",
            hint="Build each message with agents.Outgoing(receiver_id, payload, ...).",
        )
    expires_at = _when(out.ttl_seconds, out.expires_at, "expires_at", now)
    not_before = _when(out.delay_seconds, out.not_before, "not_before", now)
    if expires_at is not None and expires_at <= (not_before or now):
        raise ValidationError(
            "the message would expire before it can be delivered",
            hint="Give a TTL longer than the delay (or no TTL).",
        )
    attempts = policy.max_attempts if out.max_attempts is None else out.max_attempts
    return A2AMessage(
        message_id=str(uuid.uuid4()),
        sender_id=sender_id,
        receiver_id=checked_id(out.receiver_id, "receiver id"),
        message_type=checked_id(out.message_type, "message type", limit=64),
        payload=_payload(out.payload, policy),
        status="pending",
        priority=integer(out.priority, "priority", low=-1000, high=1000),
        correlation_id=optional_id(out.correlation_id, "correlation id", limit=64),
        group_key=optional_id(out.group_key, "group key"),
        idempotency_key=optional_id(out.idempotency_key, "idempotency key"),
        attempts=0,
        max_attempts=integer(attempts, "max attempts", low=1, high=1000),
        not_before=not_before,
        expires_at=expires_at,
        created_at=now,
    )


def enqueue(
    session: Session,
    sender_id: str,
    messages: Sequence[Outgoing],
    *,
    policy: QueuePolicy = DEFAULT_POLICY,
) -> list[A2AMessage]:
    """Queue *messages* from *sender_id* inside the caller's transaction (a workflow
    runner sends a step and records it atomically this way). One message is inserted
    through the ORM (its ``id`` is loaded); several with one executemany of a plain
    INSERT (far cheaper; their ``message_id`` is set, their database ``id`` is not
    loaded)."""
    sender_id = checked_id(sender_id, "sender id")
    now = utcnow()
    built = [_build(sender_id, out, policy, now) for out in messages]
    require_agent(session, sender_id)
    for receiver in sorted({m.receiver_id for m in built}):
        require_agent(session, receiver)
        if not policy.open_messaging:
            require_connection(session, sender_id, receiver)
    if len(built) == 1:
        session.add(built[0])
        session.flush()
    elif built:
        columns = [c.key for c in A2AMessage.__mapper__.column_attrs if c.key != "id"]
        session.execute(
            insert(A2AMessage), [{key: getattr(m, key) for key in columns} for m in built]
        )
    notify(session, [m.receiver_id for m in built])  # delayed too: waiters learn when
    return built


def send_messages(
    engine: Engine,
    sender_id: str,
    messages: Sequence[Outgoing],
    *,
    policy: QueuePolicy = DEFAULT_POLICY,
) -> list[A2AMessage]:
    """Queue several messages in one transaction: all or none."""
    with unit_of_work(engine, WHERE) as session:
        return enqueue(session, sender_id, messages, policy=policy)


def send_message(
    engine: Engine,
    sender_id: str,
    receiver_id: str,
    payload: dict[str, Any],
    *,
    message_type: str = "message",
    priority: int = 0,
    correlation_id: str | None = None,
    group_key: str | None = None,
    idempotency_key: str | None = None,
    ttl_seconds: float | None = None,
    expires_at: datetime | None = None,
    delay_seconds: float | None = None,
    not_before: datetime | None = None,
    max_attempts: int | None = None,
    policy: QueuePolicy = DEFAULT_POLICY,
) -> A2AMessage:
    """Queue one message (``pending``, a fresh uuid ``message_id``).

    Both agents must be registered and active and, unless ``policy.open_messaging``,
    connected. *priority* orders delivery (higher first); *correlation_id* matches a
    reply to its request; messages sharing a *group_key* are delivered one at a time in
    send order; an *idempotency_key* lets the receiver process the message once
    (:func:`~cryptotrading.agents.processing.process`); *ttl_seconds* / *expires_at*
    drop it when it is not delivered in time; *delay_seconds* / *not_before* delay it;
    *max_attempts* (default from the policy) bounds its deliveries before it is
    dead-lettered."""
    out = Outgoing(
        receiver_id=receiver_id,
        payload=payload,
        message_type=message_type,
        priority=priority,
        correlation_id=correlation_id,
        group_key=group_key,
        idempotency_key=idempotency_key,
        ttl_seconds=ttl_seconds,
        expires_at=expires_at,
        delay_seconds=delay_seconds,
        not_before=not_before,
        max_attempts=max_attempts,
    )
    (message,) = send_messages(engine, sender_id, [out], policy=policy)
    return message


def list_messages(
    engine: Engine, receiver_id: str, *, status: str | None = None, limit: int = 100
) -> list[A2AMessage]:
    """Messages of *receiver_id* (newest first), optionally of one status; no claiming."""
    if status is not None and status not in MESSAGE_STATUSES:
        raise ValidationError(
            f"unknown message status {str(status)[:40]!r}",
            hint=f"Use one of {', '.join(MESSAGE_STATUSES)}.",
        )
    limit = integer(limit, "limit", low=1, high=100_000)
    query = select(A2AMessage).where(A2AMessage.receiver_id == receiver_id)
    if status is not None:
        query = query.where(A2AMessage.status == status)
    query = query.order_by(A2AMessage.created_at.desc(), A2AMessage.id.desc()).limit(limit)
    with read_session(engine) as session:
        require_agent(session, receiver_id, active=False)
        return list(session.scalars(query))
