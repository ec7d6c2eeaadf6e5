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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cryptotrading.agents._common import WHERE
from cryptotrading.agents.policy import DEFAULT_POLICY, QueuePolicy
from cryptotrading.agents.settle import ack_in, check_receipt, locked_message, nack
from cryptotrading.common.checks import document
from cryptotrading.common.clock import utcnow
from cryptotrading.common.views import AsDict
from cryptotrading.db import unit_of_work
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
    try:
        with unit_of_work(engine, WHERE) as session:
            current = locked_message(session, message.message_id)
            check_receipt(current, message.receipt)
            key = current.idempotency_key
            done = None if key is None else processed_key(session, current.receiver_id, key)
            if done is not None:
                ack_in(session, current, message.receipt)
                return Processed(current.message_id, "duplicate", done.result)
            try:
                result = document(handler(session, current), "handler result")
            except Exception as error:  # the handler's failure: roll back, give it back
                raise _HandlerFailed(f"{type(error).__name__}: {error}") from error
            if key is not None:
                session.add(
                    A2AProcessedKey(
                        consumer_id=current.receiver_id,
                        idempotency_key=key,
                        message_id=current.message_id,
                        result=result,
                        processed_at=utcnow(),
                    )
                )
            ack_in(session, current, message.receipt)
            return Processed(current.message_id, "processed", result)
    except _HandlerFailed as failed:
        reason = str(failed)[:10_000]
    nack(engine, message.message_id, message.receipt, reason=reason, policy=policy)
    return Processed(message.message_id, "failed", error=reason)


class _HandlerFailed(Exception):
    """Carries a handler's failure out of the rolled-back transaction."""
