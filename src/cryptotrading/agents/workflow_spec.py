"""Workflow definitions: a DAG of steps, validated when saved.

A definition is a JSON object::

    {"inputs": ["symbol"],                     # keys every execution's input must have
     "steps": [
       {"id": "analyse", "agent": "market-analyst",            # or "capability": "..."
        "input": {"symbol": "$input.symbol"},                  # mapping, references allowed
        "timeout_seconds": 60,                                 # per attempt (default 300)
        "retry": {"max_attempts": 3, "backoff_seconds": 1}},   # defaults 3 and 1
       {"id": "risk", "agent": "risk", "input": {"signal": "$steps.analyse.signal"}},
       {"id": "execute", "agent": "executor", "after": ["risk"],
        "input": {"signal": "$steps.analyse", "verdict": "$steps.risk"}}],
     "result": {"order": "$steps.execute.order"}}             # default: the sink steps' outputs

A string value beginning with ``$input`` or ``$steps.<id>`` is a reference (a dotted
path into the execution's input or an earlier step's output; ``$$`` escapes a literal
``$``). A step runs once every step it references or lists in ``after`` has completed.
Saving refuses unknown step references, cycles, undeclared inputs, duplicate ids and
malformed fields with a :class:`~cryptotrading.errors.ValidationError` naming the step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cryptotrading.common.checks import required_document
from cryptotrading.errors import ValidationError

STEP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,47}$")
DEFAULT_TIMEOUT_SECONDS = 300.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF_SECONDS = 1.0
HINT = "Fix the workflow definition; see docs/agents.md#workflow-definitions."
STEP_KEYS = {"id", "agent", "capability", "input", "after", "timeout_seconds", "retry", "type"}


@dataclass(frozen=True)
class Step:
    """One validated step."""

    id: str
    agent: str | None
    capability: str | None
    message_type: str
    input: Any
    needs: tuple[str, ...]
    timeout_seconds: float
    max_attempts: int
    backoff_seconds: float


@dataclass(frozen=True)
class Workflow:
    """A validated definition: its steps in an order that respects the dependencies."""

    inputs: tuple[str, ...]
    steps: tuple[Step, ...]
    result: Any

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


def _bad(message: str) -> ValidationError:
    return ValidationError(message, hint=HINT)


def references(value: Any) -> list[tuple[str, tuple[str, ...]]]:
    """The references in *value*: (``input`` or ``steps``, path) pairs."""
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in references(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in references(item)]
    if isinstance(value, str) and value.startswith("$") and not value.startswith("$$"):
        root, *path = value[1:].split(".")
        return [(root, tuple(path))]
    return []


def _number(step: str, field: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _bad(f"step {step!r}: {field} must be a number from {low:g} to {high:g}")
    return float(value)


def _step(raw: Any, position: int) -> Step:
    if not isinstance(raw, dict):
        raise _bad(f"step #{position + 1} is not an object")
    step_id = raw.get("id")
    if not isinstance(step_id, str) or not STEP_ID.match(step_id):
        raise _bad(f"step #{position + 1} has no valid id (letters, digits, '-', '_'; at most 48)")
    unknown = sorted(set(raw) - STEP_KEYS)
    if unknown:
        raise _bad(f"step {step_id!r}: unknown field {unknown[0]!r}")
    agent, capability = raw.get("agent"), raw.get("capability")
    if (agent is None) == (capability is None):
        raise _bad(f"step {step_id!r} needs exactly one of 'agent' or 'capability'")
    for field, value in (("agent", agent), ("capability", capability), ("type", raw.get("type"))):
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 128):
            raise _bad(f"step {step_id!r}: {field} must be a non-empty string")
    after = raw.get("after", [])
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise _bad(f"step {step_id!r}: 'after' must be a list of step ids")
    retry = raw.get("retry", {})
    if not isinstance(retry, dict) or set(retry) - {"max_attempts", "backoff_seconds"}:
        raise _bad(f"step {step_id!r}: retry takes max_attempts and backoff_seconds only")
    attempts = _number(step_id, "retry.max_attempts", retry.get("max_attempts", 3), 1, 100)
    if attempts != int(attempts):
        raise _bad(f"step {step_id!r}: retry.max_attempts must be a whole number")
    mapping = raw.get("input", {})
    needs = {path[0] for root, path in references(mapping) if root == "steps" and path}
    return Step(
        id=step_id,
        agent=agent,
        capability=capability,
        message_type=raw.get("type") or f"workflow.{step_id}",
        input=mapping,
        needs=tuple(sorted(needs | set(after))),
        timeout_seconds=_number(
            step_id, "timeout_seconds", raw.get("timeout_seconds", 300), 0.001, 7 * 86_400
        ),
        max_attempts=int(attempts),
        backoff_seconds=_number(
            step_id, "retry.backoff_seconds", retry.get("backoff_seconds", 1), 0, 86_400
        ),
    )


def _check_refs(owner: str, value: Any, inputs: set[str], steps: set[str]) -> None:
    for root, path in references(value):
        if root == "input":
            if path and path[0] not in inputs:
                raise _bad(f"{owner} uses input {path[0]!r}, which 'inputs' does not declare")
        elif root == "steps":
            if not path or path[0] not in steps:
                name = path[0] if path else ""
                raise _bad(f"{owner} refers to unknown step {name!r}")
        else:
            raise _bad(f"{owner} has a reference to {root!r}: use $input... or $steps.<id>...")


def _order(steps: dict[str, Step]) -> list[Step]:
    """Steps in dependency order; a cycle is refused, naming its steps."""
    done: list[Step] = []
    state: dict[str, int] = {}  # 1: visiting, 2: done

    def visit(step_id: str, trail: list[str]) -> None:
        if state.get(step_id) == 2:
            return
        if state.get(step_id) == 1:
            cycle = [*trail[trail.index(step_id) :], step_id]
            raise _bad(f"steps form a cycle: {' -> '.join(cycle)}")
        state[step_id] = 1
        for need in steps[step_id].needs:
            visit(need, [*trail, step_id])
        state[step_id] = 2
        done.append(steps[step_id])

    for step_id in steps:
        visit(step_id, [])
    return done


def parse(definition: Any) -> Workflow:
    """The validated :class:`Workflow` of a definition (see the module doc)."""
    raw = required_document(definition, "workflow definition")
    unknown = sorted(set(raw) - {"inputs", "steps", "result", "description"})
    if unknown:
        raise _bad(f"workflow definition has an unknown field {unknown[0]!r}")
    inputs = raw.get("inputs", [])
    if not isinstance(inputs, list) or not all(isinstance(i, str) and i for i in inputs):
        raise _bad("'inputs' must be a list of input names")
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise _bad("a workflow needs a non-empty list of 'steps'")
    if len(raw_steps) > 1000:
        raise _bad("a workflow has at most 1000 steps")
    steps: dict[str, Step] = {}
    for position, item in enumerate(raw_steps):
        step = _step(item, position)
        if step.id in steps:
            raise _bad(f"step id {step.id!r} is used twice")
        steps[step.id] = step
    names = set(steps)
    for step in steps.values():
        _check_refs(f"step {step.id!r}", step.input, set(inputs), names)
        for need in step.needs:
            if need not in names:
                raise _bad(f"step {step.id!r} refers to unknown step {need!r}")
    _check_refs("the result", raw.get("result"), set(inputs), names)
    return Workflow(tuple(inputs), tuple(_order(steps)), raw.get("result"))


class MissingValue(LookupError):
    """A reference whose path is not in the execution's input or a step's output."""


def resolve(value: Any, inputs: dict[str, Any], outputs: dict[str, Any]) -> Any:
    """*value* with every reference replaced by what it points at."""
    if isinstance(value, dict):
        return {k: resolve(v, inputs, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, inputs, outputs) for v in value]
    if not isinstance(value, str) or not value.startswith("$"):
        return value
    if value.startswith("$$"):
        return value[1:]
    root, *path = value[1:].split(".")
    current: Any = inputs if root == "input" else outputs
    for part in path:
        if not isinstance(current, dict) or part not in current:
            raise MissingValue(value)
        current = current[part]
    return current
