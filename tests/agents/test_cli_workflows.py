"""``cryptotrading agents workflows/executions/run`` on both backends: definitions and
their versions, executions, a workflow run through the command line alone, and the
runner worker stopped by SIGTERM / SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from cryptotrading import agents
from cryptotrading.errors import NotFoundError
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import (
    CLI_CODE,
    ROOT,
    SettingsFactory,
    assert_refused,
    invoke,
    invoke_json,
    settings_env,
    table_counts,
)

TRADE = {
    "inputs": ["symbol"],
    "steps": [
        {"id": "analyse", "agent": "analyst", "input": {"symbol": "$input.symbol"}},
        {
            "id": "risk",
            "agent": "risk",
            "input": {"signal": "$steps.analyse.signal", "symbol": "$input.symbol"},
            "retry": {"max_attempts": 1},
        },
    ],
    "result": {"signal": "$steps.analyse.signal", "approved": "$steps.risk.approved"},
}
#: Liveness bound of the polling loops (not a timing assertion).
WAIT_SECONDS = 60.0


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings("three")


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return settings_env(settings)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    with Stores(settings) as stores:
        yield stores.engine(stores.app)


def cli(env: dict[str, str], *args: str, **options: Any) -> Any:
    """``cryptotrading agents ARGS --json``, parsed."""
    return invoke_json(env, "agents", *args, "--json", **options)


def write(tmp_path: Path, name: str, definition: Any) -> str:
    path = tmp_path / name
    path.write_text(definition if isinstance(definition, str) else json.dumps(definition))
    return str(path)


def wire(env: dict[str, str], *step_agents: str, runner: str = "workflow-runner") -> None:
    """Step agents and the runner, registered and connected through the CLI."""
    invoke(env, "agents", "register", runner, "--type", "workflow-runner", code=0)
    for agent in step_agents:
        invoke(env, "agents", "register", agent, "--type", "step-agent", code=0)
        invoke(env, "agents", "connect", runner, agent, code=0)


def test_define_list_show_versions(env: dict[str, str], tmp_path: Path) -> None:
    path = write(tmp_path, "trade.json", TRADE)
    first = cli(env, "workflows", "define", "trade", "--file", path, "--name", "Trade")
    assert first["version"] == 1 and first["definition"] == TRADE
    assert (
        cli(env, "workflows", "define", "trade", "--file", path, "--name", "Trade")["version"] == 1
    )
    changed = {**TRADE, "description": "v2"}
    piped = cli(env, "workflows", "define", "trade", "-f", "-", "--name", "Trade",
                input=json.dumps(changed))  # fmt: skip
    assert piped["version"] == 2
    assert cli(env, "workflows", "show", "trade")["definition"] == changed
    old = cli(env, "workflows", "show", "trade", "--version", "1")
    assert old["definition"] == TRADE and old["version"] == 1
    listed = cli(env, "workflows", "list")
    assert [(w["workflow_id"], w["version"]) for w in listed] == [("trade", 2)]
    text = invoke(env, "agents", "workflows", "show", "trade", code=0).stdout
    assert '"$steps.analyse.signal"' in text and "Trade" in text
    assert "trade" in invoke(env, "agents", "workflows", "list", code=0).stdout
    assert_refused(
        invoke(env, "agents", "workflows", "show", "trade", "--version", "3"), "no version 3", 6
    )
    assert_refused(invoke(env, "agents", "workflows", "show", "ghost"), "does not exist", 6)


def test_define_refusals_write_nothing(
    settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    step = {"id": "a", "agent": "x"}
    cycle = {"steps": [{**step, "after": ["b"]}, {"id": "b", "agent": "x", "after": ["a"]}]}
    cases: list[tuple[str | Any, str, int]] = [
        (cycle, "cycle", 5),
        ({"steps": [{**step, "input": {"v": "$steps.zz.out"}}]}, "unknown step 'zz'", 5),
        ({"steps": [{**step, "input": {"v": "$input.s"}}]}, "does not declare", 5),
        ({"steps": [step, step]}, "used twice", 5),
        ({"steps": []}, "non-empty list of 'steps'", 5),
        ({"steps": [{**step, "retry": {"max_attempts": 0}}]}, "retry.max_attempts", 5),
        ([step], "must be a JSON object", 5),
        ("{nope", "is not valid JSON", 5),
        ("", "is not valid JSON", 5),
        ('{"steps": [' * 100_000, "", 5),
    ]
    before = table_counts(settings)
    for number, (definition, message, code) in enumerate(cases):
        path = write(tmp_path, f"wf-{number}.json", definition)
        result = invoke(env, "agents", "workflows", "define", "w", "--file", path)
        assert_refused(result, message, code)
        assert "step" in result.stderr or "JSON" in result.stderr or "nested" in result.stderr
    (tmp_path / "latin1.json").write_bytes('{"steps": "é"}'.encode("latin-1"))
    files = [
        (str(tmp_path / "latin1.json"), "is not UTF-8 text", 5),
        (str(tmp_path / "missing.json"), "no such file", 6),
        (str(tmp_path), "is a directory", 5),
        ("/dev/null", "is a character device", 5),
    ]
    for path, message, code in files:
        assert_refused(invoke(env, "agents", "workflows", "define", "w", "-f", path), message, code)
    stdin = invoke(env, "agents", "workflows", "define", "w", "-f", "-", input=json.dumps(cycle))
    assert_refused(stdin, "steps form a cycle: a -> b -> a", 5)
    good = write(tmp_path, "good.json", {"steps": [step]})
    long_name = invoke(env, "agents", "workflows", "define", "w", "-f", good, "--name", "n" * 200)
    assert_refused(long_name, "workflow name", 5)
    assert table_counts(settings) == before


def test_executions_start_list_show_cancel(env: dict[str, str], tmp_path: Path) -> None:
    cli(env, "workflows", "define", "trade", "--file", write(tmp_path, "t.json", TRADE))
    started = cli(env, "executions", "start", "trade", "--input", '{"symbol": "BTC/USDT"}')
    assert started["status"] == "running" and started["workflow_version"] == 1
    input_file = write(tmp_path, "in.json", {"symbol": "ETH/USDT"})
    second = cli(env, "executions", "start", "trade", "--input-file", input_file)
    third = cli(env, "executions", "start", "trade", "--input-file", "-",
                input='{"symbol": "X", "extra": 1}')  # fmt: skip
    assert second["input_data"] == {"symbol": "ETH/USDT"} and third["input_data"]["extra"] == 1
    shown = cli(env, "executions", "show", started["execution_id"])
    assert shown["execution"]["execution_id"] == started["execution_id"]
    assert [(s["step_id"], s["status"]) for s in shown["steps"]] == [
        ("analyse", "waiting"),
        ("risk", "waiting"),
    ]
    assert "analyse" in invoke(env, "agents", "executions", "show", third["execution_id"]).stdout
    cancelled = cli(env, "executions", "cancel", second["execution_id"], "--reason", "no longer")
    assert cancelled["status"] == "cancelled" and cancelled["error"] == "no longer"
    after = cli(env, "executions", "show", second["execution_id"])
    assert {s["status"] for s in after["steps"]} == {"cancelled"}
    listed = cli(env, "executions", "list", "--workflow", "trade")
    assert [e["execution_id"] for e in listed] == [
        third["execution_id"],
        second["execution_id"],
        started["execution_id"],
    ]
    assert [e["execution_id"] for e in cli(env, "executions", "list", "--status", "cancelled")] == [
        second["execution_id"]
    ]
    assert len(cli(env, "executions", "list", "--limit", "1")) == 1
    assert cli(env, "executions", "list", "--workflow", "ghost") == []
    refusals = [
        (("start", "trade"), "needs input 'symbol'", 5),
        (("start", "trade", "--input", "[1]"), "must be a JSON object", 5),
        (("start", "trade", "--input", "{}", "--input-file", "-"), "not both", 5),
        (("start", "ghost"), "does not exist", 6),
        (("show", "nope"), "does not exist", 6),
        (("cancel", second["execution_id"]), "already cancelled", 9),
        (("cancel", "nope"), "does not exist", 6),
        (("list", "--status", "lost"), "unknown execution status", 5),
    ]
    for args, message, code in refusals:
        assert_refused(invoke(env, "agents", "executions", *args), message, code)


def serve_by_hand(env: dict[str, str], agent: str, reply: dict[str, Any], kind: str) -> str:
    """Be step agent *agent* through the CLI: receive its one request, send the reply
    (``workflow.result`` or ``workflow.error``) with the request's correlation id and
    acknowledge the request. Returns the request's symbol input."""
    (request,) = cli(env, "receive", agent)
    assert request["sender_id"] == "workflow-runner" and request["correlation_id"]
    cli(env, "send", agent, "workflow-runner", "--type", kind, "--correlation-id",
        request["correlation_id"], "--payload", json.dumps(reply))  # fmt: skip
    cli(env, "ack", request["message_id"], "--receipt", request["receipt"])
    return str(request["payload"]["input"]["symbol"])


def test_a_workflow_run_through_the_cli_alone(env: dict[str, str], tmp_path: Path) -> None:
    wire(env, "analyst", "risk")
    cli(env, "workflows", "define", "trade", "--file", write(tmp_path, "t.json", TRADE))
    execution = cli(env, "executions", "start", "trade", "--input", '{"symbol": "BTC/USDT"}')
    run = ("run", "--once")
    assert cli(env, *run) == {"dispatched": 1, "finished": 0, "replies": 0, "timeouts": 0}
    assert cli(env, "receive", "risk") == []  # risk waits for the analysis
    signal_out = {"output": {"signal": "buy", "confidence": 0.7}}
    assert serve_by_hand(env, "analyst", signal_out, "workflow.result") == "BTC/USDT"
    assert cli(env, *run) == {"dispatched": 1, "finished": 0, "replies": 1, "timeouts": 0}
    middle = cli(env, "executions", "show", execution["execution_id"])
    assert [s["status"] for s in middle["steps"]] == ["completed", "sent"]
    assert middle["steps"][0]["output_data"] == {"signal": "buy", "confidence": 0.7}
    serve_by_hand(env, "risk", {"output": {"approved": True}}, "workflow.result")
    text = invoke(env, "agents", *run, code=0).stdout
    assert text.startswith("1 replies, 0 timeouts, 0 steps sent")
    done = cli(env, "executions", "show", execution["execution_id"])
    assert done["execution"]["status"] == "completed"
    assert done["execution"]["result_data"] == {"signal": "buy", "approved": True}
    assert [s["attempts"] for s in done["steps"]] == [1, 1]
    # A step answered with an error and no retry left fails the execution, naming it.
    failing = cli(env, "executions", "start", "trade", "--input", '{"symbol": "ETH/USDT"}')
    cli(env, *run)
    serve_by_hand(env, "analyst", {"output": {"signal": "sell"}}, "workflow.result")
    cli(env, *run)
    serve_by_hand(env, "risk", {"error": "exposure too high"}, "workflow.error")
    cli(env, *run)
    failed = cli(env, "executions", "show", failing["execution_id"])["execution"]
    assert failed["status"] == "failed" and "'risk'" in failed["error"]
    assert "exposure too high" in failed["error"]
    assert [e["status"] for e in cli(env, "executions", "list")] == ["failed", "completed"]


def test_run_refusals(env: dict[str, str]) -> None:
    for args, message in [
        (("--idle", "nan"), "--idle must be finite"),
        (("--idle", "0"), "--idle 0.0 is outside"),
        (("--runner-id", " ", "--once"), "agent id"),
    ]:
        assert_refused(invoke(env, "agents", "run", *args), message, 5)


def _runner(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CLI_CODE, "agents", "run", *args],
        cwd=ROOT,
        env={**os.environ, **settings_env(settings)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {WAIT_SECONDS:g} s")
        time.sleep(0.02)


def _registered(engine: Engine, agent_id: str) -> bool:
    try:
        agents.get_agent(engine, agent_id)
    except NotFoundError:
        return False
    return True


@pytest.mark.slow  # two interpreter start-ups
def test_the_worker_runs_executions_and_stops_cleanly(
    settings: Settings, env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    """`agents run` as a process: it moves executions on while step agents serve
    (here, in the test) and ends with exit 0 on SIGTERM, or on SIGINT while idle."""
    wire(env, "analyst", "risk")
    cli(env, "workflows", "define", "trade", "--file", write(tmp_path, "t.json", TRADE))
    worker = _runner(settings, "--json", "--idle", "0.05")
    try:
        ids = [
            cli(env, "executions", "start", "trade", "--input", json.dumps({"symbol": s}))[
                "execution_id"
            ]
            for s in ("BTC/USDT", "ETH/USDT")
        ]

        def serve() -> bool:
            agents.serve_steps(engine, "analyst", lambda _s, given, _m: {"signal": given["symbol"]})
            agents.serve_steps(engine, "risk", lambda _s, given, _m: {"approved": True})
            found = agents.list_executions(engine, status="completed")
            return len(found) == len(ids)

        _until(serve, "both executions completed by the worker")
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=WAIT_SECONDS)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert "Traceback" not in err
    passes = [json.loads(line) for line in out.splitlines()]
    assert passes and all(
        set(p) == {"dispatched", "finished", "replies", "timeouts"} for p in passes
    )
    assert sum(p["dispatched"] for p in passes) == 4 and sum(p["replies"] for p in passes) == 4
    for execution_id in ids:
        view = agents.show_execution(engine, execution_id)
        assert view.execution["result_data"]["approved"] is True
    idle = _runner(settings, "--runner-id", "runner-2")
    try:
        _until(lambda: _registered(engine, "runner-2"), "the second runner registered")
        idle.send_signal(signal.SIGINT)
        out, err = idle.communicate(timeout=WAIT_SECONDS)
    finally:
        if idle.poll() is None:
            idle.kill()
    assert idle.returncode == 0 and "Traceback" not in err, err
    assert "stopped; the next run resumes from what is recorded" in out
