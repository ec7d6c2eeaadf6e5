"""What the workflow tests share (not a test module): agents wired to a runner, and a
loop that drives the runner and the step agents until something has happened."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cryptotrading import agents
from cryptotrading.db import unit_of_work
from cryptotrading.models import A2AWorkflowStep
from cryptotrading.models.agents import A2AMessage

RUNNER = "workflow-runner"
#: Liveness bound of :func:`drive` (not a timing assertion: a pass takes milliseconds).
DRIVE_SECONDS = 60.0


def wire(
    engine: Engine,
    step_agents: dict[str, list[str]],
    *,
    connect: bool = True,
    runner_id: str = RUNNER,
) -> agents.WorkflowRunner:
    """Register *step_agents* (id -> capabilities) and a runner connected to each."""
    runner = agents.WorkflowRunner(engine, runner_id)
    runner.register()
    for agent_id, capabilities in step_agents.items():
        agents.register_agent(engine, agent_id, "step-agent", capabilities=capabilities)
        if connect:
            agents.connect_agents(engine, runner_id, agent_id)
    return runner


def status(engine: Engine, execution_id: str) -> str:
    return str(agents.show_execution(engine, execution_id).execution["status"])


def steps(engine: Engine, execution_id: str) -> dict[str, dict[str, Any]]:
    """The execution's step records by step id."""
    return {s["step_id"]: s for s in agents.show_execution(engine, execution_id).steps}


def drive(
    runner: agents.WorkflowRunner,
    until: Callable[[], bool],
    serve: Callable[[], object] | None = None,
    *,
    seconds: float = DRIVE_SECONDS,
) -> None:
    """Runner passes (and a round of *serve*) until *until* holds."""
    deadline = time.monotonic() + seconds
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {seconds:g} s")
        busy = runner.run_once().busy
        if serve is not None:
            serve()
        if not busy:
            time.sleep(0.005)


def finished(engine: Engine, execution_id: str) -> Callable[[], bool]:
    return lambda: status(engine, execution_id) != "running"


def requests(engine: Engine, receiver_id: str) -> list[A2AMessage]:
    """Every message *receiver_id* was sent, oldest first."""
    with unit_of_work(engine) as session:
        query = select(A2AMessage).where(A2AMessage.receiver_id == receiver_id)
        return list(session.scalars(query.order_by(A2AMessage.id)))


def step_record(engine: Engine, execution_id: str, step_id: str) -> A2AWorkflowStep:
    with unit_of_work(engine) as session:
        return session.scalars(
            select(A2AWorkflowStep).where(
                A2AWorkflowStep.execution_id == execution_id, A2AWorkflowStep.step_id == step_id
            )
        ).one()


#: A step agent's work (see :func:`cryptotrading.agents.serve_steps`).
Work = Callable[[Session, dict[str, Any], A2AMessage], dict[str, Any]]


def server(engine: Engine, work: dict[str, Work]) -> Callable[[], int]:
    """One round of every step agent of *work* (agent id -> its work): the requests
    handled."""

    def serve() -> int:
        return sum(len(agents.serve_steps(engine, agent, job)) for agent, job in work.items())

    return serve
