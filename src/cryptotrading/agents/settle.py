"""Settling a delivered message: acknowledge it, give it back with an error (retried
after a backoff, dead-lettered after its last attempt), or extend its lease.

Every call names the delivery by the *receipt* its claim returned. A receipt stays
valid until the message is claimed again, so a consumer whose lease ran out may still
settle it as long as no other consumer has taken it; once another has, the call
raises :class:`~cryptotrading.errors.LeaseLostError`. Without a receipt (the CLI's
``agents ack ID``) the current delivery is settled.

Late settlement by the last receipt holder (nobody claimed the message since): an ack
makes it ``processed`` whether its lease was merely over (still ``delivered``), it was
already swept back to ``pending``, or swept on to ``dead`` (last attempt) or
``expired`` (TTL passed) -- the holder did the work, so it is not done again; a nack
gives it back as usual (a ``dead`` one stays dead with the new reason). Settling a
message already ``processed`` under the same receipt: an ack is a no-op, a nack a
ConflictError. Issue 13 review: ``expired`` became settleable (the rule above held for
every other state); ids, receipts and reasons are checked (a NUL was a PostgreSQL
driver error); a nack, and the ack of a message of a FIFO group (which frees the next
one), wake the receiver's waiting consumers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from cryptotrading.agents._common import WHERE
from cryptotrading.agents.policy import DEFAULT_POLICY, QueuePolicy
from cryptotrading.agents.registry import checked_id, checked_text, optional_id
from cryptotrading.agents.wakeup import notify
from cryptotrading.common.checks import number
from cryptotrading.common.clock import utcnow
from cryptotrading.common.views import AsDict
from cryptotrading.db import unit_of_work
from cryptotrading.errors import ConflictError, LeaseLostError, NotFoundError, ValidationError
from cryptotrading.models.agents import A2AMessage

#: States a message can be settled from by the holder of its last receipt.
SETTLEABLE = ("delivered", "pending", "dead", "expired")


def locked_message(session: Session, message_id: str) -> A2AMessage:
    """The message, row-locked on PostgreSQL, else NotFoundError."""
    message_id = checked_id(message_id, "message id", limit=64)
    message = session.scalar(
        select(A2AMessage).where(A2AMessage.message_id == message_id).with_for_update()
    )
    if message is None:
        raise NotFoundError(
            f"message {str(message_id)[:80]!r} does not exist",
            hint="Use the message_id a claim returned (`cryptotrading agents receive`).",
        )
    return message


def check_receipt(message: A2AMessage, receipt: str | None) -> None:
    """Refuse to settle *message* unless *receipt* names its current delivery."""
    if receipt is None:
        if message.status != "delivered":
            raise ConflictError(
                f"message {message.message_id} is {message.status}, not delivered",
                hint="Claim it first (`cryptotrading agents receive`), then settle it.",
            )
        return
    if message.receipt != optional_id(receipt, "receipt", limit=36):
        raise LeaseLostError(
            f"message {message.message_id} is {message.status} after attempt "
            f"{message.attempts}: this receipt does not name its latest delivery"
        )
    if message.status not in SETTLEABLE:
        raise ConflictError(
            f"message {message.message_id} is already {message.status}",
            hint="It was acknowledged under this receipt: there is nothing left to settle.",
        )


def ack_in(session: Session, message: A2AMessage, receipt: str | None) -> A2AMessage:
    """Acknowledge *message* inside the caller's transaction (idempotent)."""
    if message.status == "processed" and (receipt is None or receipt == message.receipt):
        return message
    check_receipt(message, receipt)
    message.status = "processed"
    message.processed_at = utcnow()
    message.lease_expires_at = None
    message.dead_lettered_at = None
    if message.group_key is not None:  # the next message of its group may go now
        notify(session, [message.receiver_id])
    return message


def acknowledge(engine: Engine, message_id: str, receipt: str | None = None) -> A2AMessage:
    """Mark the delivery ``processed``: it will not be delivered again."""
    with unit_of_work(engine, WHERE) as session:
        return ack_in(session, locked_message(session, message_id), receipt)


@dataclass(frozen=True)
class AckResult(AsDict):
    """Outcome of :func:`acknowledge_many`."""

    acked: int
    lost: list[str] = field(default_factory=list)  # message ids whose lease was lost


def acknowledge_many(engine: Engine, deliveries: Iterable[A2AMessage]) -> AckResult:
    """Acknowledge claimed messages in one transaction (by their receipts); those
    redelivered meanwhile are reported in ``lost``, the rest acknowledged."""
    wanted = {}
    for delivery in deliveries:
        if not isinstance(delivery, A2AMessage):
            raise ValidationError(
                f"acknowledge_many takes claimed messages, got {type(delivery).__name__}",
                hint="Pass the messages claim_messages / receive returned.",
            )
        wanted[checked_id(delivery.message_id, "message id", limit=64)] = optional_id(
            delivery.receipt, "receipt", limit=36
        )
    if not wanted:
        return AckResult(0)
    now = utcnow()
    by_receipt: dict[str | None, list[str]] = {}
    for message_id, receipt in wanted.items():
        by_receipt.setdefault(receipt, []).append(message_id)
    settled: set[str] = set()
    grouped: set[str] = set()
    with unit_of_work(engine, WHERE) as session:
        # One set-based UPDATE per receipt (a claim's batch shares one).
        for receipt, ids in sorted(by_receipt.items(), key=lambda item: str(item[0])):
            if receipt is None:
                continue
            rows = session.execute(
                update(A2AMessage)
                .where(
                    A2AMessage.message_id.in_(sorted(ids)),
                    A2AMessage.receipt == receipt,
                    A2AMessage.status.in_(SETTLEABLE),
                )
                .values(
                    status="processed",
                    processed_at=now,
                    lease_expires_at=None,
                    dead_lettered_at=None,
                )
                .returning(A2AMessage.message_id, A2AMessage.receiver_id, A2AMessage.group_key)
                .execution_options(synchronize_session=False)
            )
            for message_id, receiver_id, group_key in rows:
                settled.add(message_id)
                if group_key is not None:  # the next message of its group may go now
                    grouped.add(receiver_id)
        rest = sorted(set(wanted) - settled)
        # The others: acknowledged before under the same receipt (no-op), else lost.
        already = (
            {
                message_id
                for message_id, status, receipt in session.execute(
                    select(A2AMessage.message_id, A2AMessage.status, A2AMessage.receipt).where(
                        A2AMessage.message_id.in_(rest)
                    )
                )
                if status == "processed" and receipt is not None and receipt == wanted[message_id]
            }
            if rest
            else set()
        )
        notify(session, grouped)
    lost = [message_id for message_id in rest if message_id not in already]
    return AckResult(len(settled) + len(already), lost)


def nack_in(
    session: Session,
    message: A2AMessage,
    receipt: str | None,
    reason: str,
    *,
    delay_seconds: float | None,
    policy: QueuePolicy,
) -> A2AMessage:
    """:func:`nack` inside the caller's transaction."""
    check_receipt(message, receipt)
    now = utcnow()
    message.last_error = reason
    message.lease_expires_at = None
    if message.attempts >= message.max_attempts:
        message.status = "dead"
        message.dead_lettered_at = now
        return message
    delay = policy.backoff(message.attempts) if delay_seconds is None else delay_seconds
    message.status = "pending"
    message.not_before = now + timedelta(seconds=delay)
    notify(session, [message.receiver_id])  # waiters learn when it is due again
    return message


def nack(
    engine: Engine,
    message_id: str,
    receipt: str | None = None,
    *,
    reason: str,
    delay_seconds: float | None = None,
    policy: QueuePolicy = DEFAULT_POLICY,
) -> A2AMessage:
    """Give a delivery back with *reason*: it is delivered again after *delay_seconds*
    (default: the policy's exponential backoff with jitter), or, when this was its last
    attempt, it becomes a dead letter keeping *reason* as ``last_error``."""
    why = checked_text(reason, "reason", limit=10_000)
    delay = None if delay_seconds is None else number(delay_seconds, "delay", low=0, high=10**7)
    with unit_of_work(engine, WHERE) as session:
        message = locked_message(session, message_id)
        return nack_in(session, message, receipt, why, delay_seconds=delay, policy=policy)


def extend_lease(
    engine: Engine, message_id: str, receipt: str | None, *, seconds: float
) -> A2AMessage:
    """Keep a delivery for *seconds* more from now (long processing)."""
    extra = number(seconds, "lease seconds", low=0.001, high=7 * 86_400)
    with unit_of_work(engine, WHERE) as session:
        message = locked_message(session, message_id)
        check_receipt(message, receipt)
        if message.status != "delivered":
            raise LeaseLostError(
                f"message {message.message_id}'s lease has passed (now {message.status})"
            )
        message.lease_expires_at = utcnow() + timedelta(seconds=extra)
        return message
