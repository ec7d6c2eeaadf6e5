"""kill -9 of the workflow runner at random moments (seeded: ``RUNNER_KILL_SEED``).

Each trial starts a few executions of a three-step workflow, then runs the runner in a
process and SIGKILLs it at a random moment -- once a random number of further steps
have completed, plus a random delay -- again and again, until every execution has
finished (after a few kills the last runner is left to finish). The step agents run in
a process of their own (``_step_agents_worker.py``) and write one ``agent_contexts`` row
per step they perform, in the transaction that replies. In the end every execution has
completed, every step was sent once (one attempt) and its side effect is recorded
exactly once; the counts are printed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from cryptotrading import agents
from cryptotrading.db import unit_of_work
from cryptotrading.models import A2AProcessedKey, A2AWorkflowStep
from cryptotrading.models.agents import A2AMessage, AgentContext
from cryptotrading.stores import Stores
from tests.agents._workflow_support import RUNNER, wire

HERE = Path(__file__).parent
TRIALS = 20
EXECUTIONS = 4  # per trial
MAX_KILLS = 3  # per trial; then the last runner finishes the trial
KILL_AFTER = (0.0, 0.03)  # seconds from the chosen progress to the kill (uniform)
TRIAL_SECONDS = 60.0  # liveness bound of a runner's progress

WORKFLOW = {
    "inputs": ["n"],
    "steps": [
        {"id": "a", "agent": "alpha", "input": {"n": "$input.n"}, "timeout_seconds": 600},
        {"id": "b", "agent": "beta", "input": {"n": "$steps.a.n"}, "timeout_seconds": 600},
        {"id": "c", "agent": "gamma", "input": {"n": "$steps.b.n"}, "timeout_seconds": 600},
    ],
    "result": {"n": "$steps.c.n"},
}


class Spawner:
    """The ``_runner_worker.py spawn`` process: forks runner children on request."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "_runner_worker.py"), "spawn", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []  # read but not yet wanted

    def _line(self, wanted: str) -> None:
        assert self.process.stdout is not None
        while wanted not in self.lines:
            line = self.process.stdout.readline()
            assert line, f"the spawner ended before {wanted!r}"
            self.lines.append(line.strip())
        self.lines.remove(wanted)

    def start(self) -> int:
        """Fork a runner; returns its pid once it has registered."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("start\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline().strip()
        while not line.startswith("pid "):  # a late "ready" of a child killed early
            self.lines.append(line)
            line = self.process.stdout.readline().strip()
        pid = int(line.split()[1])
        self._line(f"ready {pid}")
        return pid

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def _completed_steps(engine: Engine, runs: list[str]) -> int:
    with unit_of_work(engine) as session:
        query = select(func.count()).where(
            A2AWorkflowStep.execution_id.in_(runs), A2AWorkflowStep.status == "completed"
        )
        return int(session.scalar(query) or 0)


def _running(engine: Engine, runs: list[str]) -> bool:
    return any(agents.show_execution(engine, run).execution["status"] == "running" for run in runs)


@pytest.mark.slow
def test_runner_killed_at_random_moments_completes_every_execution_once(
    stores: Stores,
    app_engine: Engine,
    backend: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed = int(os.environ.get("RUNNER_KILL_SEED", time.time()))
    rng = random.Random(seed)
    wire(app_engine, {"alpha": [], "beta": [], "gamma": []})
    agents.define_workflow(app_engine, "tri", WORKFLOW)
    stop = tmp_path / "stop"
    step_agents = subprocess.Popen(
        [sys.executable, str(HERE / "_step_agents_worker.py"), stores.app.url, str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    spawner = Spawner(stores.app.url)
    runs: list[str] = []
    kills = 0
    seconds: dict[str, float] = {"start-up": 0.0, "working": 0.0}
    try:
        for trial in range(TRIALS):
            batch = [
                agents.start_execution(app_engine, "tri", {"n": 100 * trial + i}).execution_id
                for i in range(EXECUTIONS)
            ]
            runs.extend(batch)
            for attempt in range(MAX_KILLS + 1):
                began = time.monotonic()
                pid = spawner.start()
                seconds["start-up"] += time.monotonic() - began
                began = time.monotonic()
                done = _completed_steps(app_engine, batch)
                total = 3 * len(batch)
                # Kill once a random number of further steps completed (so kills land during
                # the work however fast the machine), a random moment after; the last runner
                # of the trial finishes it.
                # (steps of parallel executions complete in bursts: stop short of the last)
                last = attempt == MAX_KILLS or done > total - EXECUTIONS
                target = total if last else rng.randint(done, total - EXECUTIONS)
                while done < target:
                    waited = time.monotonic() - began
                    assert waited < TRIAL_SECONDS, f"trial {trial} stuck (seed {seed})"
                    time.sleep(0.005)
                    done = _completed_steps(app_engine, batch)
                time.sleep(rng.uniform(*KILL_AFTER))
                seconds["working"] += time.monotonic() - began
                busy = _running(app_engine, batch)
                os.kill(pid, signal.SIGKILL)
                kills += busy
                if not busy:
                    break
    finally:
        stop.touch()
        spawner.close()
        served, errors = step_agents.communicate(timeout=60)
    assert step_agents.returncode == 0, errors

    with unit_of_work(app_engine) as session:
        effects = Counter(
            (row["execution"], row["step"])
            for row in session.scalars(
                select(AgentContext.context_data).where(AgentContext.context_type == "side-effect")
            )
        )
        attempts = Counter(session.scalars(select(A2AWorkflowStep.attempts)))
        redeliveries = session.scalar(
            select(func.coalesce(func.sum(A2AMessage.attempts - 1), 0)).where(
                A2AMessage.attempts > 1
            )
        )
        replies_redelivered = session.scalar(
            select(func.count()).where(A2AMessage.receiver_id == RUNNER, A2AMessage.attempts > 1)
        )
        keys = session.scalar(select(func.count()).select_from(A2AProcessedKey))
    steps = 3 * len(runs)
    with capsys.disabled():
        print(
            f"\nrunner kill -9 ({backend}, RUNNER_KILL_SEED={seed}): {kills} kills in {TRIALS} "
            f"trials, {len(runs)} executions, {steps} steps, {redeliveries} redeliveries "
            f"({replies_redelivered} replies delivered again), {served} steps served; "
            + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
        )
    for run in runs:
        view = agents.show_execution(app_engine, run)
        assert view.execution["status"] == "completed", (seed, view.execution)
        assert view.execution["result_data"] == {"n": view.execution["input_data"]["n"] + 3}
    assert attempts == {1: steps}, (seed, attempts)  # no step was sent twice
    assert set(effects) == {(run, step) for run in runs for step in "abc"}, seed
    assert set(effects.values()) == {1}, (seed, [k for k, n in effects.items() if n > 1])
    assert keys == steps and int(served) == steps
    assert agents.list_dead_letters(app_engine) == []
    assert kills >= TRIALS // 2  # kills landed while executions were running (typically 25-60)
