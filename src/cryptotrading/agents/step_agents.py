"""The step agents' side of workflows: answering the runner's step requests.

A request (sent by :class:`~cryptotrading.agents.runner.WorkflowRunner`) carries
``{"execution_id", "workflow_id", "step_id", "attempt", "input"}`` and an idempotency
key. :func:`serve_steps` performs a step, replies and acknowledges the request in one
transaction (exactly once per key, see :mod:`~cryptotrading.agents.processing`), and
answers a repeated request with the reply it recorded. A step agent replying by other
means uses :func:`reply_in` inside the transaction that performs the step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cryptotrading.agents._common import WHERE
from cryptotrading.agents.messages import Outgoing, enqueue
from cryptotrading.agents.policy import DEFAULT_POLICY, QueuePolicy
from cryptotrading.agents.processing import Processed, process
from cryptotrading.agents.receiving import receive
from cryptotrading.db import unit_of_work
from cryptotrading.models.agents import A2AMessage

REPLY_RESULT = "workflow.result"
REPLY_ERROR = "workflow.error"
#: Deliveries of a reply before it is dead-lettered: only a runner bug fails a reply,
#: while every runner killed holding it uses one delivery.
REPLY_MAX_ATTEMPTS = 1000


class StepError(Exception):
    """Raised by a step's work to answer the runner with an error (the attempt fails and
    is retried per the step's policy) instead of giving the message back."""


def reply_in(
    session: Session,
    request: A2AMessage,
    *,
    output: dict[str, Any] | None = None,
    error: str | None = None,
    policy: QueuePolicy = DEFAULT_POLICY,
) -> A2AMessage:
    """Answer a step request inside the caller's transaction (the one that performs the
    step and acknowledges the request, see :func:`serve_steps`): ``{"output": ...}`` or
    ``{"error": ...}``, with the request's attempt number."""
    payload: dict[str, Any] = {"error": error} if error is not None else {"output": output or {}}
    attempt = request.payload.get("attempt")
    if isinstance(attempt, int) and not isinstance(attempt, bool):
        payload["attempt"] = attempt
    kind = REPLY_ERROR if error is not None else REPLY_RESULT
    out = Outgoing(
        receiver_id=request.sender_id,
        payload=payload,
        message_type=kind,
        correlation_id=request.correlation_id,
        max_attempts=REPLY_MAX_ATTEMPTS,
    )
    (sent,) = enqueue(session, request.receiver_id, [out], policy=policy)
    return sent


#: A step agent's work: (session, the step's resolved input, the request) -> output.
StepWork = Callable[[Session, dict[str, Any], A2AMessage], "dict[str, Any]"]


def serve_steps(
    engine: Engine,
    agent_id: str,
    work: StepWork,
    *,
    limit: int = 10,
    wait_seconds: float = 0.0,
    policy: QueuePolicy = DEFAULT_POLICY,
) -> list[Processed]:
    """One round of a step agent: receive step requests and, for each, perform *work*,
    reply and acknowledge in one transaction (exactly once per step, see
    :mod:`~cryptotrading.agents.processing`). *work* raising :class:`StepError` replies
    with the error and keeps none of its writes; any other exception gives the request
    back for redelivery. A request already processed (sent again after a timeout) is
    answered again with the recorded reply, without running *work*."""

    def handler(session: Session, message: A2AMessage) -> dict[str, Any]:
        given = message.payload.get("input")
        try:
            with session.begin_nested():  # a StepError rolls back the work's writes
                output = work(session, given if isinstance(given, dict) else {}, message)
        except StepError as failure:
            error = str(failure) or "step failed"
            reply_in(session, message, error=error, policy=policy)
            return {"error": error}
        reply_in(session, message, output=output, policy=policy)
        return {"output": output}

    done: list[Processed] = []
    for message in receive(engine, agent_id, limit=limit, wait_seconds=wait_seconds, policy=policy):
        outcome = process(engine, message, handler, policy=policy)
        if outcome.status == "duplicate" and outcome.result is not None:
            _reply_again(engine, message, outcome.result, policy)
        done.append(outcome)
    return done


def _reply_again(
    engine: Engine, request: A2AMessage, recorded: dict[str, Any], policy: QueuePolicy
) -> None:
    """Answer a repeated request with the reply recorded when it was processed (the
    runner may not have it: it timed out, or the reply was dead-lettered)."""
    error = recorded.get("error")
    output = recorded.get("output")
    with unit_of_work(engine, WHERE) as session:
        if isinstance(error, str):
            reply_in(session, request, error=error, policy=policy)
        else:
            reply_in(
                session, request, output=output if isinstance(output, dict) else {}, policy=policy
            )
