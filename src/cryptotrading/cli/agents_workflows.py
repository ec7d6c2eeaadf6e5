"""``cryptotrading agents workflows/executions/run``: workflow definitions, their
executions and the runner worker, thin over :mod:`cryptotrading.agents`."""

from __future__ import annotations

import json
from typing import Any

import typer

from cryptotrading import agents
from cryptotrading.agents.runner import RUNNER_ID
from cryptotrading.cli._common import command_group
from cryptotrading.cli._output import JsonOption, console, emit
from cryptotrading.cli.agents import agents_app
from cryptotrading.cli.agents_support import (
    emit_row,
    json_file,
    json_input,
    moment,
    open_agents,
    record,
    safe,
    say,
    table,
)
from cryptotrading.cli.replicate import stop_on_signals
from cryptotrading.common.checks import number
from cryptotrading.common.clock import utcnow
from cryptotrading.common.views import row_view
from cryptotrading.ops.replication import Stop

workflows_app = command_group("Workflow definitions: versioned DAGs of steps.")
executions_app = command_group("Workflow executions: start, show, list, cancel.")
agents_app.add_typer(workflows_app, name="workflows")
agents_app.add_typer(executions_app, name="executions")

WorkflowArgument = typer.Argument(..., help="Workflow id.")
ExecutionArgument = typer.Argument(..., help="Execution id (from executions start or list).")


def _time(text: str | None) -> str | None:
    """An ISO time of a view as ``2021-07-10 12:00:00`` (UTC)."""
    return None if text is None else text[:19].replace("T", " ")


def _show_definition(title: str, data: dict[str, Any]) -> None:
    record(title, {k: v for k, v in data.items() if k != "definition"})
    console.print(safe(json.dumps(data.get("definition"), indent=2, sort_keys=True)))


@workflows_app.command("define")
def define(
    ctx: typer.Context,
    workflow_id: str = WorkflowArgument,
    file: str = typer.Option(
        ..., "--file", "-f", help="The definition: a JSON file ('-': stdin), see docs/agents.md."
    ),
    name: str | None = typer.Option(None, "--name", help="Display name."),
    as_json: bool = JsonOption,
) -> None:
    """Create a workflow or update it (a new version when anything changes).

    The definition is validated first: steps, references, cycles, inputs."""
    engine = open_agents(ctx).engine
    workflow = agents.define_workflow(engine, workflow_id, json_file(file, "--file"), name=name)
    emit(
        as_json,
        row_view(workflow),
        lambda: console.print(
            safe(f"workflow {workflow.workflow_id} is at version {workflow.version}")
        ),
    )


@workflows_app.command("list")
def workflows_list(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Defined workflows, by id."""
    found = agents.list_workflows(open_agents(ctx).engine)
    emit(
        as_json,
        [row_view(w) for w in found],
        lambda: table(
            "workflows",
            ["workflow_id", "name", "version", "steps", "updated"],
            [
                (
                    w.workflow_id,
                    w.name,
                    w.version,
                    len(w.definition.get("steps") or []),
                    w.updated_at,
                )
                for w in found
            ],
            empty="no workflows",
        ),
    )


@workflows_app.command("show")
def workflows_show(
    ctx: typer.Context,
    workflow_id: str = WorkflowArgument,
    version: int | None = typer.Option(None, "--version", help="A recorded version."),
    as_json: bool = JsonOption,
) -> None:
    """A workflow's current definition (or one recorded version)."""
    engine = open_agents(ctx).engine
    found = (
        agents.get_workflow(engine, workflow_id)
        if version is None
        else agents.workflow_version(engine, workflow_id, version)
    )
    data = row_view(found)
    emit(as_json, data, lambda: _show_definition(f"workflow {workflow_id}", data))


# -------------------------------------------------------------------------- executions


@executions_app.command("start")
def start(
    ctx: typer.Context,
    workflow_id: str = WorkflowArgument,
    input_json: str | None = typer.Option(None, "--input", help="The input: a JSON object."),
    input_file: str | None = typer.Option(
        None, "--input-file", help="Read the input from this file ('-': stdin)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Start a run of the workflow's current version; `agents run` moves it on."""
    given = json_input(input_json, input_file, option="--input", file_option="--input-file")
    execution = agents.start_execution(open_agents(ctx).engine, workflow_id, given)
    emit_row(as_json, f"execution {execution.execution_id}", row_view(execution))


@executions_app.command("show")
def show(
    ctx: typer.Context, execution_id: str = ExecutionArgument, as_json: bool = JsonOption
) -> None:
    """An execution with every step's status, attempts, timing and output."""
    view = agents.show_execution(open_agents(ctx).engine, execution_id)

    def render() -> None:
        record(f"execution {execution_id}", view.execution)
        table(
            "steps",
            ["step", "status", "attempts", "agent", "started", "completed", "output / error"],
            [
                (
                    s["step_id"],
                    s["status"],
                    s["attempts"],
                    s["agent_id"],
                    _time(s["started_at"]),
                    _time(s["completed_at"]),
                    s["error"] or s["output_data"],
                )
                for s in view.steps
            ],
        )

    emit(as_json, view.as_dict(), render)


@executions_app.command("list")
def executions_list(
    ctx: typer.Context,
    workflow: str | None = typer.Option(None, "--workflow", help="Only this workflow's."),
    status: str | None = typer.Option(
        None, "--status", help="running, completed, failed or cancelled."
    ),
    limit: int = typer.Option(100, "--limit", help="At most this many."),
    as_json: bool = JsonOption,
) -> None:
    """Executions, newest first."""
    found = agents.list_executions(
        open_agents(ctx).engine, workflow_id=workflow, status=status, limit=limit
    )
    emit(
        as_json,
        [row_view(e) for e in found],
        lambda: table(
            "executions",
            ["execution_id", "workflow", "version", "status", "started", "completed", "error"],
            [
                (
                    e.execution_id,
                    e.workflow_id,
                    e.workflow_version,
                    e.status,
                    e.started_at,
                    e.completed_at,
                    e.error,
                )
                for e in found
            ],
            empty="no executions",
        ),
    )


@executions_app.command("cancel")
def cancel(
    ctx: typer.Context,
    execution_id: str = ExecutionArgument,
    reason: str = typer.Option("cancelled", "--reason", help="Why (kept as its error)."),
    as_json: bool = JsonOption,
) -> None:
    """Cancel a running execution and its unfinished steps; later replies are ignored."""
    execution = agents.cancel_execution(open_agents(ctx).engine, execution_id, reason=reason)
    say(as_json, row_view(execution), f"execution {execution.execution_id} cancelled")


# ------------------------------------------------------------------------------ runner


def _pass_line(done: agents.RunnerPass) -> str:
    return (
        f"{done.replies} replies, {done.timeouts} timeouts, {done.dispatched} steps sent, "
        f"{done.finished} executions finished"
    )


@agents_app.command("run")
def run(
    ctx: typer.Context,
    runner_id: str = typer.Option(
        RUNNER_ID, "--runner-id", help="The runner's agent id (registered if needed)."
    ),
    idle: float = typer.Option(
        1.0, "--idle", help="Longest wait between idle passes, 0.01..3600 seconds."
    ),
    once: bool = typer.Option(False, "--once", help="One pass, then exit."),
    as_json: bool = JsonOption,
) -> None:
    """The workflow runner worker: moves running executions on.

    Each pass collects step replies, fails timed-out attempts and sends ready steps;
    a line (or with --json a JSON document) per busy pass. Runs until SIGTERM or Ctrl-C:
    a clean stop between passes (within --idle seconds); a killed runner resumes from
    what is recorded."""
    idle = number(idle, "--idle", low=0.01, high=3600)
    env = open_agents(ctx)
    runner = agents.WorkflowRunner(env.engine, runner_id, policy=env.policy)
    if once:
        runner.register()
        done = runner.run_once()
        emit(as_json, done.as_dict(), lambda: console.print(_pass_line(done)))
        return

    def report(done: agents.RunnerPass) -> None:
        if not done.busy:
            return
        if as_json:  # one compact JSON document per line and busy pass
            typer.echo(json.dumps(done.as_dict(), sort_keys=True))
        else:
            console.print(f"{moment(utcnow())}  {_pass_line(done)}")

    stop = Stop()
    stop_on_signals(stop)
    runner.run(stop=stop.is_set, idle_seconds=idle, on_pass=report)
    if as_json:
        return
    console.print("stopped; the next run resumes from what is recorded")
