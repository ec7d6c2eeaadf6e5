"""Exactly-once processing over at-least-once delivery.

Delivery is at-least-once: a consumer that dies after its work but before its
acknowledgement gets the message again. :func:`process` makes the *effects* happen
once: the handler writes through the session it is given, and in that same
transaction the message is acknowledged and, when it carries an ``idempotency_key``,
the key is recorded for the consumer (``a2a_processed_keys``) with the handler's
result. A redelivery whose key is recorded is acknowledged with the stored result and
the handler is not called. A handler that raises leaves nothing behind: its writes roll
back and the message is negatively acknowledged (retried after a backoff, dead-lettered
after its last attempt).

The key is recorded *before* the handler runs (issue 13 review): two deliveries
carrying the same key (a sender that sent twice) processed at the same time used to
run both handlers and fail the second commit on the unique key with an
IntegrityViolationError; now the second waits for the first (PostgreSQL blocks on the
uncommitted key; SQLite serialises writers) and, once the first has committed, is
acknowledged as a ``duplicate`` without running its handler -- if the first rolled back,
the second processes normally. A handler's write that fails at the flush after it
returns, or a result that is no storable JSON object, counts as the handler's failure
(rolled back, nacked) instead of escaping as a store error. Calling :func:`process`
again for a delivery it already processed is a no-op reported as ``duplicate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cryptotrading.agents._common import WHERE
from cryptotrading.agents.policy import DEFAULT_POLICY, QueuePolicy
from cryptotrading.agents.registry import checked_document
from cryptotrading.agents.settle import ack_in, check_receipt, locked_message, nack
from cryptotrading.common.clock import utcnow
from cryptotrading.common.views import AsDict
from cryptotrading.db import unit_of_work
from cryptotrading.errors import ConflictError
from cryptotrading.models import A2AProcessedKey
from cryptotrading.models.agents import A2AMessage

#: A handler: writes its effects through the session, returns a JSON object or None.
Handler = Callable[[Session, A2AMessage], "dict[str, Any] | None"]


@dataclass(frozen=True)
class Processed(AsDict):
    """What :func:`process` did with one delivery."""

    message_id: str
    status: str  # processed, duplicate (key already processed) or failed
    result: dict[str, Any] | None = None
    error: str | None = None


def processed_key(session: Session, consumer_id: str, key: str) -> A2AProcessedKey | None:
    """The consumer's record of having processed *key*, if any."""
    return session.scalar(
        select(A2AProcessedKey).where(
            A2AProcessedKey.consumer_id == consumer_id, A2AProcessedKey.idempotency_key == key
        )
    )


def process(
    engine: Engine,
    message: A2AMessage,
    handler: Handler,
    *,
    policy: QueuePolicy = DEFAULT_POLICY,
) -> Processed:
    """Run *handler* on a claimed *message* and acknowledge it in one transaction (see
    the module doc). A lost lease raises :class:`~cryptotrading.errors.LeaseLostError`
    and writes nothing; a failing handler's message is nacked with the error."""
    for _ in range(3):
        try:
            return _process_once(engine, message, handler)
        except _KeyTaken:
            continue  # another delivery of the key committed first: a duplicate now
        except _HandlerFailed as failed:
            reason = str(failed)[:10_000]
            nack(engine, message.message_id, message.receipt, reason=reason, policy=policy)
            return Processed(message.message_id, "failed", error=reason)
    raise ConflictError(
        f"message {message.message_id}: its idempotency key kept being taken and released",
        hint="Deliveries sharing the key keep failing; process the message again later.",
    )


def _process_once(engine: Engine, message: A2AMessage, handler: Handler) -> Processed:
    with unit_of_work(engine, WHERE) as session:
        current = locked_message(session, message.message_id)
        key = current.idempotency_key
        done = None if key is None else processed_key(session, current.receiver_id, key)
        if current.status == "processed" and message.receipt == current.receipt:
            # this very delivery was processed already (a retry of process): no-op
            return Processed(current.message_id, "duplicate", None if done is None else done.result)
        check_receipt(current, message.receipt)
        if done is not None:
            ack_in(session, current, message.receipt)
            return Processed(current.message_id, "duplicate", done.result)
        record = None
        if key is not None:  # taken first: a concurrent delivery of the key waits for us
            record = A2AProcessedKey(
                consumer_id=current.receiver_id,
                idempotency_key=key,
                message_id=current.message_id,
                processed_at=utcnow(),
            )
            session.add(record)
            try:
                session.flush()
            except IntegrityError:
                raise _KeyTaken from None
        try:
            result = handler(session, current)
            session.flush()
            result = None if result is None else checked_document(result, "handler result")
        except Exception as error:  # the handler's failure: roll back, give it back
            raise _HandlerFailed(f"{type(error).__name__}: {error}") from error
        if record is not None:
            record.result = result
        ack_in(session, current, message.receipt)
        return Processed(current.message_id, "processed", result)


class _KeyTaken(Exception):
    """Another delivery of the same idempotency key committed its processing first."""


class _HandlerFailed(Exception):
    """Carries a handler's failure out of the rolled-back transaction."""
