"""The workflow runner: moves running executions on, one recorded transition at a time.

A pass (:meth:`WorkflowRunner.run_once`) does three things, each transition in its own
transaction so a runner killed at any moment resumes from what is recorded:

1. **Replies.** It claims the replies in its inbox; for each, in one transaction, the
   step matched by correlation id is recorded ``completed`` with the reply's output (or
   its attempt failed, for an error reply) and the reply is acknowledged -- a reply is
   recorded once, however often it is delivered. A late reply (the step timed out and
   was sent again, or waits for its retry) still completes the step; an error reply
   for an attempt that is no longer the current one is ignored. When the last step
   completes, the execution completes with its ``result_data`` in that transaction.
2. **Timeouts.** A ``sent`` step past its deadline has failed that attempt.
3. **Dispatch.** Each ``waiting`` step whose dependencies have completed (and whose
   retry delay has passed) is sent to its agent (a capability's agents take successive
   attempts in turn) -- the request message and the step's new state in one
   transaction. The request carries the idempotency key
   ``<execution>:<step>:<correlation id>``: an agent processing with
   :func:`~cryptotrading.agents.processing.process` (as ``serve_steps`` does)
   performs the step once even when it is sent again after a timeout, and answers the
   repeat with its recorded reply. After an *error* reply the step gets a new
   correlation id, hence a new key: the work failed, so the retry must run it again.

A failed attempt is retried after ``backoff_seconds * 2**(attempt-1)`` until the step's
``max_attempts``; then the step fails and so does the execution, naming it. Step agents
answer with :func:`~cryptotrading.agents.step_agents.serve_steps` (or
:func:`~cryptotrading.agents.step_agents.reply_in`). When an execution ends, the
requests still queued for it are withdrawn (``expired``); replies that arrive later are
acknowledged and ignored.

Several runners may run at once (same runner id, so any of them takes the replies):
each transition locks its execution first, so a step is never sent twice by two
runners. The runner is itself an agent (default id ``workflow-runner``); unless
messaging is open, connect it to every agent its workflows use.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, exists, or_, select
from sqlalchemy.orm import Session, aliased

from cryptotrading.agents._common import WHERE, read_session
from cryptotrading.agents.claims import claim_messages
from cryptotrading.agents.messages import Outgoing, enqueue
from cryptotrading.agents.policy import DEFAULT_POLICY, QueuePolicy
from cryptotrading.agents.processing import process
from cryptotrading.agents.registry import list_agents, register_agent
from cryptotrading.agents.step_agents import (
    REPLY_ERROR,
    REPLY_MAX_ATTEMPTS,
    REPLY_RESULT,
    StepError,
    StepWork,
    reply_in,
    serve_steps,
)
from cryptotrading.agents.wakeup import EXECUTIONS_CHANNEL, waiter
from cryptotrading.agents.workflow_spec import MissingValue, Step, Workflow, parse, resolve
from cryptotrading.agents.workflows import finish, withdraw
from cryptotrading.common.clock import as_utc, utcnow
from cryptotrading.common.views import AsDict
from cryptotrading.db import unit_of_work
from cryptotrading.errors import CryptotradingError, LeaseLostError
from cryptotrading.models import A2AWorkflowStep, A2AWorkflowVersion
from cryptotrading.models.agents import A2AMessage, A2AWorkflowExecution

__all__ = [  # the step agents' side lives in step_agents; these names stay importable here
    "REPLY_ERROR",
    "REPLY_MAX_ATTEMPTS",
    "REPLY_RESULT",
    "RUNNER_ID",
    "RunnerPass",
    "StepError",
    "StepWork",
    "WorkflowRunner",
    "reply_in",
    "serve_steps",
]

RUNNER_ID = "workflow-runner"


@dataclass(frozen=True)
class RunnerPass(AsDict):
    """What one pass of the runner did."""

    replies: int = 0
    timeouts: int = 0
    dispatched: int = 0
    finished: int = 0  # executions this pass ended (completed, failed)

    @property
    def busy(self) -> bool:
        return bool(self.replies or self.timeouts or self.dispatched or self.finished)


def _error_text(error: Any) -> str:
    """An error reply's ``error`` as text: a string as it is, anything else as JSON."""
    text = error if isinstance(error, str) else json.dumps(error, sort_keys=True)
    return text[:10_000] or "step failed"


class WorkflowRunner:
    """Runs the steps of every running execution (see the module doc)."""

    def __init__(
        self,
        engine: Engine,
        runner_id: str = RUNNER_ID,
        *,
        policy: QueuePolicy = DEFAULT_POLICY,
        batch: int = 100,
    ) -> None:
        self.engine = engine
        self.runner_id = runner_id
        self.policy = policy
        self.batch = batch
        self._specs: dict[tuple[str, int], Workflow | str] = {}
        #: Executions this pass ended through a reply or a timeout (dispatch counts its own).
        self._ended = 0

    def register(self) -> None:
        """Register (or reactivate) the runner's agent."""
        register_agent(self.engine, self.runner_id, "workflow-runner", capabilities=["workflows"])

    # ------------------------------------------------------------------ definitions

    def _spec(self, session: Session, execution: A2AWorkflowExecution) -> Workflow | str:
        """The parsed definition the execution runs, or why it cannot run."""
        key = (execution.workflow_id, execution.workflow_version or 0)
        if key not in self._specs:
            version = session.scalar(
                select(A2AWorkflowVersion).where(
                    A2AWorkflowVersion.workflow_id == key[0], A2AWorkflowVersion.version == key[1]
                )
            )
            if version is None:
                self._specs[key] = f"workflow {key[0]!r} has no version {key[1]}"
            else:
                try:
                    self._specs[key] = parse(version.definition)
                except CryptotradingError as error:
                    self._specs[key] = f"workflow {key[0]!r} version {key[1]} is invalid: {error}"
        return self._specs[key]

    # ------------------------------------------------------------------------ a pass

    def run_once(self) -> RunnerPass:
        """One pass: replies, timeouts, dispatch (see the module doc)."""
        self._ended = 0
        replies = self._collect()
        timeouts = self._expire()
        dispatched, finished = self._dispatch()
        return RunnerPass(replies, timeouts, dispatched, finished + self._ended)

    def run(
        self,
        *,
        stop: Callable[[], bool] = lambda: False,
        idle_seconds: float = 1.0,
        on_pass: Callable[[RunnerPass], None] | None = None,
    ) -> None:
        """Pass after pass until *stop* returns true; when idle, wait for a reply, a new
        execution or the next deadline, at most *idle_seconds* (PostgreSQL: a
        notification ends the wait at once; SQLite: the waiter polls from 10 ms again
        after every busy pass, see :mod:`~cryptotrading.agents.wakeup`)."""
        self.register()
        with waiter(self.engine, self.runner_id, EXECUTIONS_CHANNEL) as sleeper:
            while not stop():
                done = self.run_once()
                if on_pass is not None:
                    on_pass(done)
                if done.busy:
                    sleeper.reset()
                    continue
                wake = self._next_deadline()
                pause = idle_seconds
                if wake is not None:
                    pause = min(pause, max(0.0, (wake - utcnow()).total_seconds()) + 0.001)
                sleeper.wait(pause)

    def run_until_idle(
        self,
        *,
        timeout: float = 60.0,
        step_agents: Callable[[], int] | None = None,
        executions: Sequence[str] | None = None,
    ) -> bool:
        """Passes until no execution is running -- or none of *executions* -- or
        *timeout* seconds pass (tests and examples: *step_agents* runs one round of the
        agents in this process). True when they have all finished."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.run_once()
            served = step_agents() if step_agents is not None else 0
            if not done.busy and not served and not self._running(executions):
                return True
            if time.monotonic() >= deadline:
                return not self._running(executions)
            if not done.busy and not served:
                time.sleep(0.01)

    # ------------------------------------------------------------------------ replies

    def _collect(self) -> int:
        messages = claim_messages(self.engine, self.runner_id, limit=self.batch, policy=self.policy)
        for message in messages:
            try:
                process(self.engine, message, self._record_reply, policy=self.policy)
            except LeaseLostError:
                continue  # its lease ran out and another runner took it: that one records it
        return len(messages)

    def _record_reply(self, session: Session, reply: A2AMessage) -> dict[str, Any]:
        if reply.correlation_id is None:
            return {"ignored": "the reply has no correlation id"}
        found = session.scalar(
            select(A2AWorkflowStep.execution_id).where(
                A2AWorkflowStep.correlation_id == reply.correlation_id
            )
        )
        if found is None:
            return {"ignored": "no step is waiting for this reply"}
        # Lock order everywhere: the execution, then its steps (no deadlock between runners).
        execution = self._locked_execution(session, found)
        step = session.scalar(
            select(A2AWorkflowStep)
            .where(A2AWorkflowStep.correlation_id == reply.correlation_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if step is None or step.status not in ("sent", "waiting"):
            return {"ignored": "no step is waiting for this reply"}
        if execution.status != "running":
            return {"ignored": f"execution is {execution.status}"}
        if reply.message_type == REPLY_ERROR or "error" in reply.payload:
            attempt = reply.payload.get("attempt")
            if isinstance(attempt, int) and attempt != step.attempts:
                return {"ignored": f"error reply of attempt {attempt}, now {step.attempts}"}
            error = _error_text(reply.payload.get("error"))
            if step.status == "waiting":  # the attempt timed out already: keep its backoff
                step.error = error
                step.correlation_id = str(uuid.uuid4())
            else:
                self._attempt_failed(session, execution, step, error, fresh_key=True)
                self._ended += execution.status != "running"
            return {"step": step.step_id, "status": step.status}
        output = reply.payload.get("output")
        step.status = "completed"
        step.output_data = output if isinstance(output, dict) else {"value": output}
        step.error = None
        step.completed_at = utcnow()
        step.deadline_at = None
        if step.message_id is not None:
            withdraw(session, [step.message_id], "the step completed")  # a repeat still queued
        session.flush()
        self._ended += self._maybe_complete(session, execution)
        return {"step": step.step_id, "status": "completed"}

    def _locked_execution(self, session: Session, execution_id: str) -> A2AWorkflowExecution:
        return session.scalars(
            select(A2AWorkflowExecution)
            .where(A2AWorkflowExecution.execution_id == execution_id)
            .with_for_update()
        ).one()

    def _steps(self, session: Session, execution_id: str) -> dict[str, A2AWorkflowStep]:
        rows = session.scalars(
            select(A2AWorkflowStep).where(A2AWorkflowStep.execution_id == execution_id)
        )
        return {row.step_id: row for row in rows}

    def _maybe_complete(self, session: Session, execution: A2AWorkflowExecution) -> bool:
        steps = self._steps(session, execution.execution_id)
        if any(step.status != "completed" for step in steps.values()):
            return False
        spec = self._spec(session, execution)
        if isinstance(spec, str):
            finish(session, execution, "failed", error=spec)
            return True
        outputs = {name: step.output_data for name, step in steps.items()}
        try:
            if spec.result is not None:
                result = resolve(spec.result, execution.input_data or {}, outputs)
            else:
                needed = {need for step in spec.steps for need in step.needs}
                result = {s.id: outputs[s.id] for s in spec.steps if s.id not in needed}
        except MissingValue as missing:
            finish(
                session,
                execution,
                "failed",
                error=f"the result refers to {missing}, which no step output holds",
            )
            return True
        finish(
            session,
            execution,
            "completed",
            result=result if isinstance(result, dict) else {"value": result},
        )
        return True

    # ---------------------------------------------------------------------- failures

    def _attempt_failed(
        self,
        session: Session,
        execution: A2AWorkflowExecution,
        step: A2AWorkflowStep,
        error: str,
        *,
        fresh_key: bool = False,
    ) -> None:
        """The current attempt failed: retry after the backoff, or fail the step and the
        execution. *fresh_key*: the agent answered with an error, so the retry gets a
        new correlation id and idempotency key (its work must run again)."""
        spec = self._spec(session, execution)
        now = utcnow()
        step.error = error[:10_000]
        if fresh_key:
            step.correlation_id = str(uuid.uuid4())
        if isinstance(spec, str):
            finish(session, execution, "failed", error=spec)
            return
        rule = spec.step(step.step_id)
        if step.attempts < rule.max_attempts:
            step.status = "waiting"
            delay = rule.backoff_seconds * 2 ** max(step.attempts - 1, 0)
            step.deadline_at = now + timedelta(seconds=delay)
            return
        step.status = "failed"
        step.completed_at = now
        step.deadline_at = None
        session.flush()
        finish(
            session,
            execution,
            "failed",
            error=f"step {step.step_id!r} failed after {step.attempts} attempt(s): {error}"[
                :10_000
            ],
        )

    def _expire(self) -> int:
        now = utcnow()
        with read_session(self.engine) as session:
            late = session.execute(
                select(A2AWorkflowStep.id, A2AWorkflowStep.execution_id)
                .where(A2AWorkflowStep.status == "sent", A2AWorkflowStep.deadline_at <= now)
                .order_by(A2AWorkflowStep.deadline_at)
                .limit(self.batch)
            ).all()
        count = 0
        for step_id, execution_id in late:
            with unit_of_work(self.engine, WHERE) as session:
                execution = self._locked_execution(session, execution_id)
                if execution.status != "running":
                    continue
                step = session.scalar(
                    select(A2AWorkflowStep).where(A2AWorkflowStep.id == step_id).with_for_update()
                )
                if step is None or step.status != "sent" or as_utc(step.deadline_at) > now:
                    continue
                rule = self._spec(session, execution)
                seconds = (
                    rule.step(step.step_id).timeout_seconds if not isinstance(rule, str) else 0
                )
                self._attempt_failed(
                    session,
                    execution,
                    step,
                    f"timed out after {seconds:g}s (attempt {step.attempts})",
                )
                self._ended += execution.status != "running"
                count += 1
        return count

    # ----------------------------------------------------------------------- dispatch

    def _ready(self, now: datetime) -> list[str]:
        """Running executions with a step to send now (read without locks; each is
        checked again under its lock), at most :attr:`batch`, oldest first."""
        waiting = aliased(A2AWorkflowStep)
        due = exists().where(
            waiting.execution_id == A2AWorkflowExecution.execution_id,
            waiting.status == "waiting",
            or_(waiting.deadline_at.is_(None), waiting.deadline_at <= now),
        )
        with read_session(self.engine) as session:
            rows = session.execute(
                select(
                    A2AWorkflowExecution,
                    A2AWorkflowStep.step_id,
                    A2AWorkflowStep.status,
                    A2AWorkflowStep.deadline_at,
                )
                .join(
                    A2AWorkflowStep,
                    A2AWorkflowStep.execution_id == A2AWorkflowExecution.execution_id,
                )
                .where(A2AWorkflowExecution.status == "running", due)
                .order_by(A2AWorkflowExecution.id)
            ).all()
            states: dict[str, dict[str, str]] = {}
            executions: dict[str, A2AWorkflowExecution] = {}
            for execution, step_id, status, deadline in rows:
                executions[execution.execution_id] = execution
                if status == "waiting" and deadline is not None and as_utc(deadline) > now:
                    status = "backing off"
                states.setdefault(execution.execution_id, {})[step_id] = status
            ready: list[str] = []
            for execution_id, steps in states.items():
                spec = self._spec(session, executions[execution_id])
                # Blocked executions are skipped here, so they never hold back others.
                if isinstance(spec, str) or any(
                    steps.get(rule.id) == "waiting"
                    and all(steps.get(need) == "completed" for need in rule.needs)
                    for rule in spec.steps
                ):
                    ready.append(execution_id)
                    if len(ready) >= self.batch:
                        break
        return ready

    def _dispatch(self) -> tuple[int, int]:
        now = utcnow()
        sent = finished = 0
        for execution_id in self._ready(now):
            with unit_of_work(self.engine, WHERE) as session:
                execution = self._locked_execution(session, execution_id)
                if execution.status != "running":
                    continue
                spec = self._spec(session, execution)
                if isinstance(spec, str):
                    finish(session, execution, "failed", error=spec)
                    finished += 1
                    continue
                steps = self._steps(session, execution_id)
                for rule in spec.steps:
                    row = steps.get(rule.id)
                    if row is None or row.status != "waiting" or execution.status != "running":
                        continue
                    if row.deadline_at is not None and as_utc(row.deadline_at) > now:
                        continue
                    if any(steps[need].status != "completed" for need in rule.needs):
                        continue
                    sent += self._send(session, execution, rule, row, steps, now)
                if execution.status != "running":
                    finished += 1
        return sent, finished

    def _send(
        self,
        session: Session,
        execution: A2AWorkflowExecution,
        rule: Step,
        row: A2AWorkflowStep,
        steps: dict[str, A2AWorkflowStep],
        now: datetime,
    ) -> int:
        outputs = {name: step.output_data for name, step in steps.items()}
        try:
            given = resolve(rule.input, execution.input_data or {}, outputs)
        except MissingValue as missing:
            row.status = "failed"
            row.error = f"input {missing} is missing"
            row.completed_at = now
            session.flush()
            finish(
                session, execution, "failed", error=f"step {rule.id!r}: input {missing} is missing"
            )
            return 0
        row.attempts += 1
        agent = rule.agent or self._pick(rule.capability or "", row.attempts)
        if agent is None:
            self._attempt_failed(
                session, execution, row, f"no active agent offers capability {rule.capability!r}"
            )
            return 0
        deadline = now + timedelta(seconds=rule.timeout_seconds)
        request = Outgoing(
            receiver_id=agent,
            payload={
                "execution_id": execution.execution_id,
                "workflow_id": execution.workflow_id,
                "step_id": rule.id,
                "attempt": row.attempts,
                "input": given,
            },
            message_type=rule.message_type,
            correlation_id=row.correlation_id,
            idempotency_key=f"{execution.execution_id}:{rule.id}:{row.correlation_id}",
            expires_at=deadline,
        )
        try:
            with session.begin_nested():
                (message,) = enqueue(session, self.runner_id, [request], policy=self.policy)
        except CryptotradingError as error:
            self._attempt_failed(session, execution, row, f"cannot send to {agent!r}: {error}")
            return 0
        row.status = "sent"
        row.agent_id = agent
        row.message_id = message.message_id
        row.input_data = given if isinstance(given, dict) else {"value": given}
        row.started_at = row.started_at or now
        row.deadline_at = deadline
        row.error = None
        return 1

    def _pick(self, capability: str, attempt: int) -> str | None:
        """An active agent offering *capability*; successive attempts rotate."""
        offering = [a.agent_id for a in list_agents(self.engine, capability=capability)]
        offering = [a for a in offering if a != self.runner_id]
        return offering[(attempt - 1) % len(offering)] if offering else None

    # ------------------------------------------------------------------------ helpers

    def _running(self, executions: Sequence[str] | None = None) -> bool:
        """Whether an execution (one of *executions*, when given) is still running."""
        query = select(A2AWorkflowExecution.id).where(A2AWorkflowExecution.status == "running")
        if executions is not None:
            query = query.where(A2AWorkflowExecution.execution_id.in_(list(executions)))
        with read_session(self.engine) as session:
            return session.scalar(query.limit(1)) is not None

    def _next_deadline(self) -> datetime | None:
        with read_session(self.engine) as session:
            found = session.scalar(
                select(A2AWorkflowStep.deadline_at)
                .where(
                    A2AWorkflowStep.status.in_(("sent", "waiting")),
                    A2AWorkflowStep.deadline_at.is_not(None),
                )
                .order_by(A2AWorkflowStep.deadline_at)
                .limit(1)
            )
        return None if found is None else as_utc(found)
