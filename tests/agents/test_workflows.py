"""The workflow runner on both backends: DAG order and parallel branches, input and
result mapping, versions, agent choice, retries of error replies and timeouts, late
replies, cancellation, failures named by their step, and two runner processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from cryptotrading import agents
from cryptotrading.agents.runner import REPLY_ERROR
from cryptotrading.common.clock import as_utc, utcnow
from cryptotrading.db import unit_of_work
from cryptotrading.errors import ConflictError, NotFoundError, ValidationError
from cryptotrading.models import A2AWorkflowStep
from cryptotrading.models.agents import A2AMessage, AgentContext
from cryptotrading.stores import Stores
from tests.agents._workflow_support import (
    RUNNER,
    drive,
    finished,
    requests,
    server,
    status,
    step_record,
    steps,
    wire,
)
from tests.helpers import count_rows

RUNNER_WORKER = Path(__file__).with_name("_runner_worker.py")


def _answer(output: dict[str, Any]) -> Any:
    return lambda session, given, message: output


def _steps_sent(engine: Engine, execution_id: str) -> set[str]:
    return {name for name, s in steps(engine, execution_id).items() if s["status"] == "sent"}


def test_dag_order_parallel_branches_input_and_result_mapping(app_engine: Engine) -> None:
    runner = wire(app_engine, {"alpha": [], "beta": [], "gamma": [], "delta": []})
    agents.define_workflow(
        app_engine,
        "diamond",
        {
            "inputs": ["symbol"],
            "steps": [
                {"id": "a", "agent": "alpha", "input": {"symbol": "$input.symbol"}},
                {"id": "b", "agent": "beta", "input": {"x": "$steps.a.x"}},
                {"id": "c", "agent": "gamma", "input": {"y": "$steps.a.y", "s": "$input.symbol"}},
                {
                    "id": "d",
                    "agent": "delta",
                    "input": {"b": "$steps.b", "z": ["$steps.c.z"], "literal": "$$steps.b"},
                },
            ],
            "result": {"total": "$steps.d.total", "x": "$steps.a.x"},
        },
    )
    run = agents.start_execution(app_engine, "diamond", {"symbol": "BTC/USDT", "extra": 1})
    seen: dict[str, dict[str, Any]] = {}

    def job(agent: str, output: Any) -> Any:
        def work(session: Session, given: dict[str, Any], message: A2AMessage) -> Any:
            seen[agent] = given
            return output(given)

        return work

    alpha = server(app_engine, {"alpha": job("alpha", lambda g: {"x": 2, "y": 3})})
    beta = server(app_engine, {"beta": job("beta", lambda g: {"bx": g["x"] * 10})})
    gamma = server(app_engine, {"gamma": job("gamma", lambda g: {"z": g["y"] + 1})})
    delta = server(app_engine, {"delta": job("delta", lambda g: {"total": g["b"]["bx"] + 1})})

    assert runner.run_once().dispatched == 1
    assert _steps_sent(app_engine, run.execution_id) == {"a"}
    assert beta() == gamma() == 0  # nothing for the later steps yet
    assert alpha() == 1 and seen["alpha"] == {"symbol": "BTC/USDT"}
    done = runner.run_once()
    assert (done.replies, done.dispatched) == (1, 2)  # both branches in one pass
    assert _steps_sent(app_engine, run.execution_id) == {"b", "c"}
    assert beta() == 1
    runner.run_once()
    assert steps(app_engine, run.execution_id)["d"]["status"] == "waiting"  # c not done
    assert gamma() == 1 and seen["gamma"] == {"y": 3, "s": "BTC/USDT"}
    assert runner.run_once().dispatched == 1
    assert delta() == 1
    assert seen["delta"] == {"b": {"bx": 20}, "z": [4], "literal": "$steps.b"}
    runner.run_once()
    view = agents.show_execution(app_engine, run.execution_id)
    assert view.execution["status"] == "completed" and view.execution["error"] is None
    assert view.execution["result_data"] == {"total": 21, "x": 2}
    records = {s["step_id"]: s for s in view.steps}
    assert records["d"]["input_data"] == seen["delta"]
    assert records["c"]["output_data"] == {"z": 4}
    for name, agent in zip("abcd", ("alpha", "beta", "gamma", "delta"), strict=True):
        record = records[name]
        assert (record["status"], record["attempts"], record["agent_id"]) == (
            "completed",
            1,
            agent,
        )
        assert record["started_at"] <= record["completed_at"] and record["deadline_at"] is None
        (request,) = requests(app_engine, agent)
        assert request.message_id == record["message_id"] and request.sender_id == RUNNER
        assert request.payload["step_id"] == name and request.message_type == f"workflow.{name}"
        assert request.payload["execution_id"] == run.execution_id
        assert str(request.idempotency_key).startswith(f"{run.execution_id}:{name}:")


def test_the_default_result_is_the_outputs_of_the_last_steps(app_engine: Engine) -> None:
    runner = wire(app_engine, {"w": []})
    agents.define_workflow(
        app_engine,
        "fan",
        {
            "steps": [
                {"id": "a", "agent": "w"},
                {"id": "b", "agent": "w", "after": ["a"]},
                {"id": "c", "agent": "w", "input": {"n": "$steps.a.n"}, "type": "custom.type"},
            ]
        },
    )
    scalar = agents.define_workflow(
        app_engine, "scalar", {"steps": [{"id": "a", "agent": "w"}], "result": "$steps.a.n"}
    )
    assert scalar.version == 1
    fan = agents.start_execution(app_engine, "fan")
    one = agents.start_execution(app_engine, "scalar")
    serve = server(app_engine, {"w": lambda session, given, message: {"n": 7, "in": given}})
    drive(runner, lambda: status(app_engine, fan.execution_id) == "completed", serve)
    drive(runner, finished(app_engine, one.execution_id), serve)
    fanned = agents.show_execution(app_engine, fan.execution_id).execution["result_data"]
    assert fanned == {"b": {"n": 7, "in": {}}, "c": {"n": 7, "in": {"n": 7}}}
    assert agents.show_execution(app_engine, one.execution_id).execution["result_data"] == {
        "value": 7
    }
    assert {m.message_type for m in requests(app_engine, "w")} >= {"custom.type", "workflow.b"}


def test_an_execution_runs_the_version_it_started_with(app_engine: Engine) -> None:
    runner = wire(app_engine, {"alpha": [], "beta": []})
    one_step = {"steps": [{"id": "a", "agent": "alpha"}]}
    two_steps = {"steps": [{"id": "a", "agent": "alpha"}, {"id": "b", "agent": "beta"}]}
    agents.define_workflow(app_engine, "wf", one_step)
    first = agents.start_execution(app_engine, "wf")
    runner.run_once()  # its step is on its way
    assert agents.define_workflow(app_engine, "wf", two_steps).version == 2
    second = agents.start_execution(app_engine, "wf")
    serve = server(app_engine, {"alpha": _answer({"a": 1}), "beta": _answer({"b": 2})})
    drive(runner, finished(app_engine, first.execution_id), serve)
    drive(runner, finished(app_engine, second.execution_id), serve)
    old = agents.show_execution(app_engine, first.execution_id)
    new = agents.show_execution(app_engine, second.execution_id)
    assert (old.execution["workflow_version"], new.execution["workflow_version"]) == (1, 2)
    assert [s["step_id"] for s in old.steps] == ["a"]
    assert old.execution["result_data"] == {"a": {"a": 1}}
    assert new.execution["result_data"] == {"a": {"a": 1}, "b": {"b": 2}}
    assert len(requests(app_engine, "beta")) == 1


def test_a_capability_step_rotates_its_agents_across_attempts(app_engine: Engine) -> None:
    runner = wire(app_engine, {"p1": ["price"], "p2": ["price", "other"], "p3": ["price"]})
    agents.deactivate_agent(app_engine, "p3")  # inactive: never chosen
    agents.define_workflow(
        app_engine,
        "quote",
        {"steps": [{"id": "q", "capability": "price", "retry": {"backoff_seconds": 0}}]},
    )
    calls: list[tuple[str, int]] = []

    def job(agent: str) -> Any:
        def work(session: Session, given: dict[str, Any], message: A2AMessage) -> Any:
            calls.append((agent, message.payload["attempt"]))
            if len(calls) < 3:
                raise agents.StepError(f"{agent} has no quote")
            return {"price": "33000.5", "by": agent}

        return work

    run = agents.start_execution(app_engine, "quote")
    serve = server(app_engine, {"p1": job("p1"), "p2": job("p2")})
    drive(runner, finished(app_engine, run.execution_id), serve)
    assert calls == [("p1", 1), ("p2", 2), ("p1", 3)]
    view = agents.show_execution(app_engine, run.execution_id)
    assert view.execution["result_data"] == {"q": {"price": "33000.5", "by": "p1"}}
    assert (view.steps[0]["attempts"], view.steps[0]["agent_id"]) == (3, "p1")
    assert requests(app_engine, "p3") == []


def test_error_replies_are_retried_with_backoff_then_fail_naming_the_step(
    app_engine: Engine,
) -> None:
    runner = wire(app_engine, {"flaky": []})
    calls: list[str | None] = []

    def work(session: Session, given: dict[str, Any], message: A2AMessage) -> Any:
        calls.append(message.idempotency_key)
        session.add(AgentContext(agent_id="flaky", context_type="half-done", context_data={}))
        session.flush()
        raise agents.StepError("exchange down")

    serve = server(app_engine, {"flaky": work})
    retry = {"max_attempts": 3, "backoff_seconds": 1000}
    agents.define_workflow(
        app_engine, "slow", {"steps": [{"id": "fetch", "agent": "flaky", "retry": retry}]}
    )
    run = agents.start_execution(app_engine, "slow")
    runner.run_once()
    assert serve() == 1
    before = utcnow()
    assert runner.run_once().replies == 1
    record = step_record(app_engine, run.execution_id, "fetch")
    assert (record.status, record.attempts, record.error) == ("waiting", 1, "exchange down")
    wait = (as_utc(record.deadline_at) - before).total_seconds()
    assert 1000 <= wait < 1010  # backoff_seconds * 2**0
    assert runner.run_once().dispatched == 0  # backing off
    _due_now(app_engine, run.execution_id)
    assert runner.run_once().dispatched == 1
    assert serve() == 1
    before = utcnow()
    runner.run_once()
    record = step_record(app_engine, run.execution_id, "fetch")
    wait = (as_utc(record.deadline_at) - before).total_seconds()
    assert (record.attempts, record.status) == (2, "waiting") and 2000 <= wait < 2010  # doubled
    _due_now(app_engine, run.execution_id)
    drive(runner, finished(app_engine, run.execution_id), serve)
    view = agents.show_execution(app_engine, run.execution_id)
    assert view.execution["status"] == "failed"
    assert view.execution["error"] == "step 'fetch' failed after 3 attempt(s): exchange down"
    assert (view.steps[0]["status"], view.steps[0]["attempts"]) == ("failed", 3)
    assert len(calls) == len(set(calls)) == 3  # a new key per attempt: the work ran again
    assert count_rows(app_engine, AgentContext) == 0  # a StepError keeps none of its writes
    replies = [m for m in requests(app_engine, RUNNER) if m.message_type == REPLY_ERROR]
    assert [m.payload for m in replies] == [
        {"error": "exchange down", "attempt": n} for n in (1, 2, 3)
    ]


def _due_now(engine: Engine, execution_id: str) -> None:
    """End the backoff of the execution's waiting steps (instead of sleeping)."""
    with unit_of_work(engine) as session:
        session.execute(
            update(A2AWorkflowStep)
            .where(
                A2AWorkflowStep.execution_id == execution_id, A2AWorkflowStep.status == "waiting"
            )
            .values(deadline_at=utcnow() - timedelta(seconds=1))
        )


def test_a_step_agent_that_never_answers_times_out_then_fails(app_engine: Engine) -> None:
    runner = wire(app_engine, {"silent": []})
    agents.define_workflow(
        app_engine,
        "ask",
        {
            "steps": [
                {
                    "id": "ask",
                    "agent": "silent",
                    "timeout_seconds": 0.2,
                    "retry": {"max_attempts": 2, "backoff_seconds": 0},
                }
            ]
        },
    )
    run = agents.start_execution(app_engine, "ask")
    drive(runner, finished(app_engine, run.execution_id))
    view = agents.show_execution(app_engine, run.execution_id)
    assert view.execution["status"] == "failed"
    assert view.execution["error"] == (
        "step 'ask' failed after 2 attempt(s): timed out after 0.2s (attempt 2)"
    )
    asked = requests(app_engine, "silent")
    assert [m.payload["attempt"] for m in asked] == [1, 2]
    assert len({m.idempotency_key for m in asked}) == 1  # the agent may still be at work
    assert agents.claim_messages(app_engine, "silent") == []  # nothing left to deliver
    assert {m.status for m in requests(app_engine, "silent")} == {"expired"}


def test_a_late_reply_after_a_retry_completes_the_step_once(app_engine: Engine) -> None:
    runner = wire(app_engine, {"slow": []})
    rule = {"timeout_seconds": 0.2, "retry": {"max_attempts": 3, "backoff_seconds": 0}}
    agents.define_workflow(app_engine, "wf", {"steps": [{"id": "s", "agent": "slow", **rule}]})
    run = agents.start_execution(app_engine, "wf")
    runner.run_once()
    (held,) = agents.receive(app_engine, "slow")  # attempt 1, being worked on ...
    drive(runner, lambda: step_record(app_engine, run.execution_id, "s").attempts == 2)
    calls: list[int] = []

    def handler(session: Session, message: A2AMessage) -> dict[str, Any]:
        calls.append(message.payload["attempt"])
        agents.reply_in(session, message, output={"v": "late"})
        return {"ok": True}

    assert agents.process(app_engine, held, handler).status == "processed"  # ... answers now
    drive(runner, finished(app_engine, run.execution_id))
    view = agents.show_execution(app_engine, run.execution_id)
    assert view.execution["status"] == "completed"
    assert view.steps[0]["output_data"] == {"v": "late"} and view.steps[0]["attempts"] == 2
    first, second = requests(app_engine, "slow")
    assert (first.status, second.status) == ("processed", "expired")  # the repeat withdrawn
    assert agents.serve_steps(app_engine, "slow", _answer({})) == [] and calls == [1]


def test_a_repeat_after_a_lost_reply_is_answered_from_the_record(app_engine: Engine) -> None:
    runner = wire(app_engine, {"worker": []})
    rule = {"timeout_seconds": 0.3, "retry": {"max_attempts": 3, "backoff_seconds": 0}}
    agents.define_workflow(app_engine, "wf", {"steps": [{"id": "s", "agent": "worker", **rule}]})
    run = agents.start_execution(app_engine, "wf")
    calls: list[int] = []

    def work(session: Session, given: dict[str, Any], message: A2AMessage) -> Any:
        calls.append(message.payload["attempt"])
        return {"done": True}

    serve = server(app_engine, {"worker": work})
    runner.run_once()
    assert serve() == 1
    with unit_of_work(app_engine) as session:  # the reply is lost (dead-lettered)
        session.execute(
            update(A2AMessage).where(A2AMessage.receiver_id == RUNNER).values(status="dead")
        )
    drive(runner, finished(app_engine, run.execution_id), serve)
    view = agents.show_execution(app_engine, run.execution_id)
    assert view.execution["status"] == "completed" and view.steps[0]["attempts"] == 2
    assert view.execution["result_data"] == {"s": {"done": True}}
    assert calls == [1]  # performed once; the repeat was answered from the record


def test_cancel_withdraws_requests_and_a_later_reply_is_ignored(app_engine: Engine) -> None:
    runner = wire(app_engine, {"alpha": [], "beta": []})
    agents.define_workflow(
        app_engine, "pair", {"steps": [{"id": "a", "agent": "alpha"}, {"id": "b", "agent": "beta"}]}
    )
    run = agents.start_execution(app_engine, "pair")
    other = agents.start_execution(app_engine, "pair")
    assert runner.run_once().dispatched == 4
    held = agents.receive(app_engine, "alpha", limit=1)  # alpha is working on one request
    cancelled = agents.cancel_execution(app_engine, run.execution_id, reason="operator stop")
    assert (cancelled.status, cancelled.error) == ("cancelled", "operator stop")
    view = agents.show_execution(app_engine, run.execution_id)
    assert view.execution["completed_at"] and {s["status"] for s in view.steps} == {"cancelled"}
    mine = {s["message_id"] for s in view.steps}
    queued = [m for m in requests(app_engine, "beta") if m.message_id in mine]
    assert [m.status for m in queued] == ["expired"]  # withdrawn: beta never gets it
    assert queued[0].last_error == "workflow execution cancelled"

    def answer(session: Session, message: A2AMessage) -> dict[str, Any]:
        agents.reply_in(session, message, output={"late": True})
        return {}

    for message in held:
        agents.process(app_engine, message, answer)
    serve = server(app_engine, {"alpha": _answer({"ok": 1}), "beta": _answer({"ok": 2})})
    drive(runner, finished(app_engine, other.execution_id), serve)
    view = agents.show_execution(app_engine, run.execution_id)
    assert view.execution["status"] == "cancelled" and view.execution["result_data"] is None
    assert all(s["output_data"] is None for s in view.steps)
    assert agents.list_messages(app_engine, RUNNER, status="pending") == []  # acknowledged
    assert status(app_engine, other.execution_id) == "completed"
    with pytest.raises(ConflictError, match="already cancelled"):
        agents.cancel_execution(app_engine, run.execution_id)
    with pytest.raises(ConflictError, match="already completed"):
        agents.cancel_execution(app_engine, other.execution_id)
    with pytest.raises(NotFoundError, match="does not exist"):
        agents.cancel_execution(app_engine, "no-such-execution")


def test_a_missing_input_at_dispatch_fails_the_execution_naming_the_step(
    app_engine: Engine,
) -> None:
    runner = wire(app_engine, {"w": []})
    agents.define_workflow(
        app_engine,
        "gap",
        {
            "steps": [
                {"id": "a", "agent": "w"},
                {"id": "b", "agent": "w", "input": {"y": "$steps.a.y"}},
            ]
        },
    )
    agents.define_workflow(
        app_engine, "hole", {"steps": [{"id": "a", "agent": "w"}], "result": "$steps.a.nope"}
    )
    gap = agents.start_execution(app_engine, "gap")
    hole = agents.start_execution(app_engine, "hole")
    serve = server(app_engine, {"w": _answer({"x": 1})})
    drive(runner, lambda: status(app_engine, gap.execution_id) != "running", serve)
    drive(runner, finished(app_engine, hole.execution_id), serve)
    view = agents.show_execution(app_engine, gap.execution_id)
    assert view.execution["error"] == "step 'b': input $steps.a.y is missing"
    record = {s["step_id"]: s for s in view.steps}["b"]
    assert (record["status"], record["attempts"], record["message_id"]) == ("failed", 0, None)
    failed = agents.show_execution(app_engine, hole.execution_id).execution
    assert failed["status"] == "failed"
    assert failed["error"] == "the result refers to $steps.a.nope, which no step output holds"


def test_unconnected_unknown_or_missing_agents_fail_the_execution_clearly(
    app_engine: Engine,
) -> None:
    runner = wire(app_engine, {"alpha": ["teleport"]}, connect=False)
    retry = {"max_attempts": 2, "backoff_seconds": 0}
    cases = {
        "unconnected": ({"agent": "alpha"}, "cannot send to 'alpha'", "are not connected"),
        "unknown": ({"agent": "ghost"}, "cannot send to 'ghost'", "is not registered"),
        "nobody": ({"capability": "fly"}, "no active agent offers capability 'fly'", ""),
    }
    runs = {}
    for name, (target, _, _) in cases.items():
        agents.define_workflow(app_engine, name, {"steps": [{"id": "s", **target, "retry": retry}]})
        runs[name] = agents.start_execution(app_engine, name).execution_id
    drive(runner, lambda: all(status(app_engine, e) != "running" for e in runs.values()))
    for name, (_, first, second) in cases.items():
        error = agents.show_execution(app_engine, runs[name]).execution["error"]
        assert error.startswith(f"step 's' failed after 2 attempt(s): {first}"), error
        assert second in error
    assert requests(app_engine, "alpha") == []  # nothing was sent
    stranger = agents.WorkflowRunner(app_engine, "not-a-runner")  # never registered
    with pytest.raises(NotFoundError, match="'not-a-runner' is not registered") as refused:
        stranger.run_once()
    assert refused.value.hint


@pytest.mark.slow
def test_two_runner_processes_never_send_a_step_twice(
    stores: Stores, app_engine: Engine, tmp_path: Path
) -> None:
    names = ("alpha", "beta", "gamma")
    wire(app_engine, {name: [] for name in names})
    agents.define_workflow(
        app_engine,
        "tri",
        {
            "steps": [
                {"id": "a", "agent": "alpha", "timeout_seconds": 120},
                {"id": "b", "agent": "beta", "input": {"a": "$steps.a"}, "timeout_seconds": 120},
                {"id": "c", "agent": "gamma", "after": ["a"], "timeout_seconds": 120},
            ]
        },
    )
    runs = [agents.start_execution(app_engine, "tri", {"i": i}).execution_id for i in range(30)]
    stop = tmp_path / "stop"
    runners = [
        subprocess.Popen(
            [sys.executable, str(RUNNER_WORKER), "run", stores.app.url, str(stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        serve = server(app_engine, {name: _answer({"by": name}) for name in names})
        started = time.monotonic()
        while agents.list_executions(app_engine, status="running"):
            assert time.monotonic() - started < 120, "executions did not finish"
            if not serve():
                time.sleep(0.01)
    finally:
        stop.touch()
        outcomes = [runner.communicate(timeout=60) for runner in runners]
    for runner, (_, err) in zip(runners, outcomes, strict=True):
        assert runner.returncode == 0, err
    dispatched = [json.loads(out).get("dispatched", 0) for out, _ in outcomes]
    print(f"two runners dispatched {dispatched} steps of {len(runs)} executions")
    assert sum(dispatched) == 3 * len(runs)
    assert {status(app_engine, e) for e in runs} == {"completed"}
    with unit_of_work(app_engine) as session:
        attempts = session.scalars(select(A2AWorkflowStep.attempts)).all()
    assert len(attempts) == 3 * len(runs) and set(attempts) == {1}
    for name in names:
        sent = requests(app_engine, name)
        assert len(sent) == len(runs)  # one request per step, never two
        assert len({(m.payload["execution_id"], m.payload["step_id"]) for m in sent}) == len(runs)


def test_run_until_idle_waits_for_the_executions_it_is_given(app_engine: Engine) -> None:
    runner = wire(app_engine, {"quick": [], "silent": []})
    agents.define_workflow(app_engine, "quick", {"steps": [{"id": "s", "agent": "quick"}]})
    agents.define_workflow(app_engine, "stuck", {"steps": [{"id": "s", "agent": "silent"}]})
    stuck = agents.start_execution(app_engine, "stuck").execution_id
    quick = agents.start_execution(app_engine, "quick").execution_id
    serve = server(app_engine, {"quick": _answer({"ok": True})})
    assert runner.run_until_idle(timeout=60, step_agents=serve, executions=[quick])
    assert (status(app_engine, quick), status(app_engine, stuck)) == ("completed", "running")
    assert runner.run_until_idle(timeout=0.05, step_agents=serve) is False  # "stuck" runs on
    assert runner.run_until_idle(timeout=0.05, executions=[stuck]) is False


_TEXT = st.text(  # the queue refuses NUL and lone surrogates
    st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=12
)
_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(min_value=-1e15, max_value=1e15)  # JSONB keeps these exactly
    | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=12,
)
_REPLIES = st.fixed_dictionaries(
    {},
    optional={"output": _VALUES, "error": _VALUES, "attempt": _VALUES | st.integers(0, 3)},
).flatmap(
    lambda known: st.dictionaries(_TEXT, _VALUES, max_size=2).map(lambda extra: {**extra, **known})
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=_REPLIES, kind=st.sampled_from(["workflow.result", "workflow.error", "chat"]))
def test_hostile_replies_never_break_the_runner(
    app_engine: Engine, payload: dict[str, Any], kind: str
) -> None:
    runner = wire(app_engine, {"w": []})
    rule = {"retry": {"max_attempts": 2, "backoff_seconds": 1000}}  # a retry stays waiting
    agents.define_workflow(app_engine, "one", {"steps": [{"id": "s", "agent": "w", **rule}]})
    run = agents.start_execution(app_engine, "one").execution_id
    runner.run_once()
    correlation = step_record(app_engine, run, "s").correlation_id
    agents.send_message(
        app_engine, "w", RUNNER, payload, message_type=kind, correlation_id=correlation
    )
    assert runner.run_once().replies == 1  # recorded or ignored, never raised
    record = step_record(app_engine, run, "s")
    failed_attempt = kind == "workflow.error" or "error" in payload
    stale = failed_attempt and isinstance(payload.get("attempt"), int) and payload["attempt"] != 1
    if failed_attempt and not stale:
        error = payload.get("error")
        text = error if isinstance(error, str) else json.dumps(error, sort_keys=True)
        assert (record.status, record.error) == ("waiting", text[:10_000] or "step failed")
    elif failed_attempt:
        assert record.status == "sent"  # an old attempt's error: ignored
    else:
        output = payload.get("output")
        assert record.status == "completed" and status(app_engine, run) == "completed"
        assert record.output_data == (output if isinstance(output, dict) else {"value": output})
    assert agents.list_messages(app_engine, RUNNER, status="pending") == []


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(given_input=_VALUES | st.floats() | st.dictionaries(st.text(max_size=6), st.floats()))
def test_hostile_execution_input_is_refused_without_writing(
    app_engine: Engine, given_input: Any
) -> None:
    agents.register_agent(app_engine, "w", "step-agent")
    agents.define_workflow(
        app_engine, "needs-x", {"inputs": ["x"], "steps": [{"id": "s", "agent": "w"}]}
    )
    before = count_rows(app_engine, A2AWorkflowStep), len(agents.list_executions(app_engine))
    try:
        run = agents.start_execution(app_engine, "needs-x", given_input)
    except ValidationError as error:
        assert error.hint
        after = count_rows(app_engine, A2AWorkflowStep), len(agents.list_executions(app_engine))
        assert after == before
        return
    assert isinstance(given_input, dict) and "x" in given_input
    assert run.status == "running" and run.input_data == given_input
