"""Workflow definitions (``a2a_workflows`` + every version in ``a2a_workflow_versions``)
and their executions (``a2a_workflow_executions`` with one ``a2a_workflow_steps`` row
per step). The :class:`~cryptotrading.agents.runner.WorkflowRunner` moves executions on.

Execution states: ``running`` -> ``completed`` (``result_data``) | ``failed`` (``error``
names the step) | ``cancelled``. Step states: ``waiting`` -> ``sent`` -> ``completed`` |
``failed``; ``waiting`` again between attempts; ``cancelled`` when the execution ends
without it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from cryptotrading.agents._common import WHERE, read_session, serialise
from cryptotrading.agents.registry import checked_id, checked_text, optional_document
from cryptotrading.agents.registry import optional_text as optional_checked_text
from cryptotrading.agents.wakeup import EXECUTIONS_CHANNEL, notify
from cryptotrading.agents.workflow_spec import parse
from cryptotrading.common.checks import integer
from cryptotrading.common.clock import utcnow
from cryptotrading.common.views import AsDict, row_view
from cryptotrading.db import unit_of_work
from cryptotrading.errors import ConflictError, NotFoundError, ValidationError
from cryptotrading.models import A2AWorkflowStep, A2AWorkflowVersion
from cryptotrading.models.agents import A2AMessage, A2AWorkflow, A2AWorkflowExecution

EXECUTION_STATUSES = ("running", "completed", "failed", "cancelled")
FINISHED = ("completed", "failed", "cancelled")


def _missing(workflow_id: str) -> NotFoundError:
    return NotFoundError(
        f"workflow {str(workflow_id)[:128]!r} does not exist",
        hint="Define it with `cryptotrading agents workflows define`; list them with "
        "`cryptotrading agents workflows list`.",
    )


def define_workflow(
    engine: Engine, workflow_id: str, definition: dict[str, Any], *, name: str | None = None
) -> A2AWorkflow:
    """Create a workflow (version 1) or update it; the definition is validated first
    (:func:`~cryptotrading.agents.workflow_spec.parse`) and the version increases only
    when the definition or name changes. Every version is kept."""
    workflow_id = checked_id(workflow_id, "workflow id", limit=128)
    parse(definition)
    checked: dict[str, Any] = dict(definition)
    name = optional_checked_text(name, "workflow name", limit=128)
    with unit_of_work(engine, WHERE) as session:
        serialise(session, f"a2a_workflow:{workflow_id}")  # one version bump at a time
        workflow = session.scalar(select(A2AWorkflow).where(A2AWorkflow.workflow_id == workflow_id))
        if workflow is None:
            workflow = A2AWorkflow(
                workflow_id=workflow_id, definition=checked, name=name, version=1
            )
            session.add(workflow)
        elif workflow.definition != checked or workflow.name != name or workflow.deleted_at:
            workflow.definition = checked
            workflow.name = name
            workflow.deleted_at = None
            workflow.deleted_by = None
            workflow.version += 1
        else:
            return workflow
        session.flush()
        session.add(
            A2AWorkflowVersion(
                workflow_id=workflow_id, version=workflow.version, name=name, definition=checked
            )
        )
        session.flush()
        return workflow


def get_workflow(engine: Engine, workflow_id: str) -> A2AWorkflow:
    """The workflow and its current definition."""
    with read_session(engine) as session:
        workflow = session.scalar(select(A2AWorkflow).where(A2AWorkflow.workflow_id == workflow_id))
    if workflow is None or workflow.deleted_at is not None:
        raise _missing(workflow_id)
    return workflow


def list_workflows(engine: Engine) -> list[A2AWorkflow]:
    """Every defined workflow, by id."""
    with read_session(engine) as session:
        query = select(A2AWorkflow).where(A2AWorkflow.deleted_at.is_(None))
        return list(session.scalars(query.order_by(A2AWorkflow.workflow_id)))


def workflow_version(engine: Engine, workflow_id: str, version: int) -> A2AWorkflowVersion:
    """One recorded version of a workflow's definition."""
    with read_session(engine) as session:
        found = session.scalar(
            select(A2AWorkflowVersion).where(
                A2AWorkflowVersion.workflow_id == workflow_id,
                A2AWorkflowVersion.version == version,
            )
        )
    if found is None:
        raise NotFoundError(
            f"workflow {str(workflow_id)[:128]!r} has no version {version}",
            hint="Show the workflow to see its current version.",
        )
    return found


def start_execution(
    engine: Engine, workflow_id: str, input_data: dict[str, Any] | None = None
) -> A2AWorkflowExecution:
    """Start a run of the workflow's current version: the execution (``running``) and
    one ``waiting`` row per step, in one transaction. A running
    :class:`~cryptotrading.agents.runner.WorkflowRunner` takes it from there."""
    data = optional_document(input_data, "input data") or {}
    with unit_of_work(engine, WHERE) as session:
        workflow = session.scalar(select(A2AWorkflow).where(A2AWorkflow.workflow_id == workflow_id))
        if workflow is None or workflow.deleted_at is not None:
            raise _missing(workflow_id)
        spec = parse(workflow.definition)
        absent = [name for name in spec.inputs if name not in data]
        if absent:
            raise ValidationError(
                f"workflow {workflow_id!r} needs input {absent[0]!r}",
                hint=f"Pass every input it declares: {', '.join(spec.inputs)}.",
            )
        execution = A2AWorkflowExecution(
            execution_id=str(uuid.uuid4()),
            workflow_id=workflow.workflow_id,
            workflow_version=workflow.version,
            status="running",
            input_data=data,
            started_at=utcnow(),
        )
        session.add(execution)
        session.flush()
        session.add_all(
            A2AWorkflowStep(
                execution_id=execution.execution_id,
                step_id=step.id,
                status="waiting",
                attempts=0,
                correlation_id=str(uuid.uuid4()),
            )
            for step in spec.steps
        )
        session.flush()
        notify(session, [EXECUTIONS_CHANNEL])
        return execution


@dataclass(frozen=True)
class ExecutionView(AsDict):
    """An execution and its steps, as ``executions show`` prints them."""

    execution: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)


def _execution(session: Any, execution_id: str, *, lock: bool = False) -> A2AWorkflowExecution:
    query = select(A2AWorkflowExecution).where(A2AWorkflowExecution.execution_id == execution_id)
    found = session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise NotFoundError(
            f"workflow execution {str(execution_id)[:80]!r} does not exist",
            hint="List executions with `cryptotrading agents executions list`.",
        )
    return found  # type: ignore[no-any-return]


def show_execution(engine: Engine, execution_id: str) -> ExecutionView:
    """The execution with every step's status, attempts, timing and output."""
    with read_session(engine) as session:
        execution = _execution(session, execution_id)
        steps = session.scalars(
            select(A2AWorkflowStep)
            .where(A2AWorkflowStep.execution_id == execution_id)
            .order_by(A2AWorkflowStep.id)
        )
        return ExecutionView(row_view(execution), [row_view(s) for s in steps])


def list_executions(
    engine: Engine,
    *,
    workflow_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[A2AWorkflowExecution]:
    """Executions, newest first, optionally of one workflow and one status."""
    if status is not None and status not in EXECUTION_STATUSES:
        raise ValidationError(
            f"unknown execution status {str(status)[:40]!r}",
            hint=f"Use one of {', '.join(EXECUTION_STATUSES)}.",
        )
    query = select(A2AWorkflowExecution)
    if workflow_id is not None:
        query = query.where(A2AWorkflowExecution.workflow_id == workflow_id)
    if status is not None:
        query = query.where(A2AWorkflowExecution.status == status)
    limit = integer(limit, "limit", low=1, high=100_000)
    query = query.order_by(A2AWorkflowExecution.id.desc()).limit(limit)
    with read_session(engine) as session:
        return list(session.scalars(query))


def cancel_execution(
    engine: Engine, execution_id: str, *, reason: str = "cancelled"
) -> A2AWorkflowExecution:
    """Stop a running execution: it and its unfinished steps become ``cancelled``;
    replies that arrive later are ignored."""
    why = checked_text(reason, "reason", limit=10_000)
    with unit_of_work(engine, WHERE) as session:
        execution = _execution(session, execution_id, lock=True)
        if execution.status in FINISHED:
            raise ConflictError(
                f"workflow execution {execution_id} is already {execution.status}",
                hint="Only a running execution can be cancelled; start a new one.",
            )
        finish(session, execution, "cancelled", error=why)
        return execution


def finish(
    session: Session,
    execution: A2AWorkflowExecution,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """End *execution* with *status*; its unfinished steps are cancelled and their
    requests still queued are withdrawn."""
    now = utcnow()
    execution.status = status
    execution.result_data = result
    execution.error = error
    execution.completed_at = now
    queued = session.scalars(
        select(A2AWorkflowStep.message_id).where(
            A2AWorkflowStep.execution_id == execution.execution_id,
            A2AWorkflowStep.status == "sent",
            A2AWorkflowStep.message_id.is_not(None),
        )
    ).all()
    withdraw(session, [m for m in queued if m is not None], f"workflow execution {status}")
    session.execute(
        update(A2AWorkflowStep)
        .where(
            A2AWorkflowStep.execution_id == execution.execution_id,
            A2AWorkflowStep.status.in_(("waiting", "sent")),
        )
        .values(status="cancelled", completed_at=now)
        .execution_options(synchronize_session=False)
    )


def withdraw(session: Session, message_ids: list[str], reason: str) -> int:
    """Inside the caller's transaction: the step requests *message_ids* that no agent
    has claimed yet become ``expired`` with *reason* (the step needs them no more)."""
    if not message_ids:
        return 0
    withdrawn = session.execute(
        update(A2AMessage)
        .where(A2AMessage.message_id.in_(message_ids), A2AMessage.status == "pending")
        .values(status="expired", last_error=reason)
        .execution_options(synchronize_session=False)
    )
    return int(withdrawn.rowcount)  # type: ignore[attr-defined]
