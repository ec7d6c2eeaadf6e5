"""Dead letters: messages whose deliveries all failed (or whose lease ran out on the
last attempt), kept with their last error until someone looks at them. They can be
listed, inspected and re-driven (back to ``pending`` with a fresh attempt budget).

A re-driven message also loses its delay and its expiry time (it would otherwise
expire at once), keeps its ``last_error`` and its last receipt (the last holder may
still acknowledge it late, see :mod:`.settle`) and takes its old place in its FIFO
group (first, but not while a later message of the group is in flight).

Issue 13 review: naming messages that do not exist is a NotFoundError and naming one
that is not dead a ConflictError (both were ValidationErrors); a single string for
*message_ids* (or anything but a list) is refused (a string was taken as a list of
one-character ids), ids that are not strings are refused by name (a TypeError on
SQLite, a driver error on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, select, update

from cryptotrading.agents._common import WHERE, read_session
from cryptotrading.agents.registry import checked_id, optional_id
from cryptotrading.agents.wakeup import notify
from cryptotrading.common.checks import integer
from cryptotrading.db import unit_of_work
from cryptotrading.errors import ConflictError, NotFoundError, ValidationError
from cryptotrading.models.agents import A2AMessage


def list_dead_letters(
    engine: Engine, *, receiver_id: str | None = None, limit: int = 100
) -> list[A2AMessage]:
    """Dead letters, newest first (of one receiver, when given)."""
    limit = integer(limit, "limit", low=1, high=100_000)
    receiver_id = optional_id(receiver_id, "receiver id")
    query = select(A2AMessage).where(A2AMessage.status == "dead")
    if receiver_id is not None:
        query = query.where(A2AMessage.receiver_id == receiver_id)
    query = query.order_by(A2AMessage.dead_lettered_at.desc(), A2AMessage.id.desc()).limit(limit)
    with read_session(engine) as session:
        return list(session.scalars(query))


def get_message(engine: Engine, message_id: str) -> A2AMessage:
    """One message, whatever its state (inspect a dead letter's payload and error)."""
    message_id = checked_id(message_id, "message id", limit=64)
    with read_session(engine) as session:
        message = session.scalar(select(A2AMessage).where(A2AMessage.message_id == message_id))
    if message is None:
        raise NotFoundError(
            f"message {str(message_id)[:80]!r} does not exist",
            hint="List dead letters with `cryptotrading agents dead-letters list`.",
        )
    return message


def redrive(
    engine: Engine,
    message_ids: Sequence[str] | None = None,
    *,
    receiver_id: str | None = None,
) -> int:
    """Put dead letters back to ``pending`` with their attempt counter reset (the last
    error is kept for the record): the ones named, or every dead letter (of
    *receiver_id*, when given). Returns how many."""
    if message_ids is not None and receiver_id is not None:
        raise ValidationError(
            "name messages or a receiver, not both", hint="Drop one of the two options."
        )
    receiver_id = optional_id(receiver_id, "receiver id")
    where = [A2AMessage.status == "dead"]
    if message_ids is not None:
        if isinstance(message_ids, str | bytes) or not isinstance(message_ids, Iterable):
            raise ValidationError(
                "message ids must be a list of ids, not one string",
                hint="Pass [message_id] to re-drive one message.",
            )
        ids = sorted({checked_id(m, "message id", limit=64) for m in message_ids})
        with read_session(engine) as session:
            found = dict(
                session.execute(
                    select(A2AMessage.message_id, A2AMessage.status).where(
                        A2AMessage.message_id.in_(ids)
                    )
                ).all()
            )
        unknown = [m for m in ids if m not in found]
        not_dead = [m for m in ids if m in found and found[m] != "dead"]
        hint = "List dead letters with `cryptotrading agents dead-letters list`."
        if unknown:
            raise NotFoundError(f"message {unknown[0]!r} does not exist", hint=hint)
        if not_dead:
            state = found[not_dead[0]]
            raise ConflictError(f"message {not_dead[0]} is {state}, not a dead letter", hint=hint)
        where.append(A2AMessage.message_id.in_(ids))
    if receiver_id is not None:
        where.append(A2AMessage.receiver_id == receiver_id)
    with unit_of_work(engine, WHERE) as session:
        receivers = session.scalars(
            update(A2AMessage)
            .where(*where)
            .values(
                status="pending",
                attempts=0,
                not_before=None,
                lease_expires_at=None,
                dead_lettered_at=None,
                delivered_at=None,
                expires_at=None,
            )
            .returning(A2AMessage.receiver_id)
            .execution_options(synchronize_session=False)
        ).all()
        notify(session, set(receivers))
        return len(receivers)
