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
malformed fields with a :class:`~cryptotrading.errors.ValidationError` naming the step;
so is a definition of more than :data:`MAX_STEPS` steps, nested deeper than
:data:`MAX_DEPTH` levels or larger than :data:`MAX_BYTES` as JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cryptotrading.agents.registry import checked_document
from cryptotrading.errors import ValidationError

STEP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,47}$")
DEFAULT_TIMEOUT_SECONDS = 300.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF_SECONDS = 1.0
HINT = "Fix the workflow definition; see docs/agents.md#workflow-definitions."
STEP_KEYS = {"id", "agent", "capability", "input", "after", "timeout_seconds", "retry", "type"}
MAX_STEPS = 1000
MAX_DEPTH = 64
MAX_BYTES = 1024 * 1024


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


def _short(value: str) -> str:
    """*value* quoted for an error message, at most 64 characters of it."""
    return repr(value if len(value) <= 64 else value[:61] + "...")


def references(value: Any) -> list[tuple[str, tuple[str, ...]]]:
    """The references in *value*: (``input`` or ``steps``, path) pairs, in order."""
    found: list[tuple[str, tuple[str, ...]]] = []
    pending = [value]  # iterative: a deep value cannot exhaust the interpreter's stack
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            pending.extend(reversed(item))
        elif isinstance(item, str) and item.startswith("$") and not item.startswith("$$"):
            root, *path = item[1:].split(".")
            found.append((root, tuple(path)))
    return found


def _depth(value: Any) -> int:
    """How deeply *value* nests objects and arrays (a scalar: 0)."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level + 1)
            if deepest > MAX_DEPTH:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, level + 1) for child in children)
    return deepest


def _number(step: str, field: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _bad(f"step {step!r}: {field} must be a number from {low:g} to {high:g}")
    return float(value)


def _step(raw: Any, position: int) -> Step:
    if not isinstance(raw, dict):
        raise _bad(f"step #{position + 1} is not an object")
    step_id = raw.get("id")
    if not isinstance(step_id, str) or not STEP_ID.fullmatch(step_id):
        raise _bad(f"step #{position + 1} has no valid id (letters, digits, '-', '_'; at most 48)")
    unknown = sorted(set(raw) - STEP_KEYS)
    if unknown:
        raise _bad(f"step {step_id!r}: unknown field {_short(unknown[0])}")
    agent, capability = raw.get("agent"), raw.get("capability")
    if (agent is None) == (capability is None):
        raise _bad(f"step {step_id!r} needs exactly one of 'agent' or 'capability'")
    for field, value, limit in (
        ("agent", agent, 128),
        ("capability", capability, 128),
        ("type", raw.get("type"), 64),  # a message type
    ):
        if value is not None and (
            not isinstance(value, str) or not value.strip() or len(value) > limit
        ):
            raise _bad(f"step {step_id!r}: {field} must be a non-empty string of at most {limit}")
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
                raise _bad(f"{owner} uses input {_short(path[0])}, which 'inputs' does not declare")
        elif root == "steps":
            if not path or path[0] not in steps:
                name = path[0] if path else ""
                raise _bad(f"{owner} refers to unknown step {_short(name)}")
        else:
            raise _bad(
                f"{owner} has a reference to {_short(root)}: use $input... or $steps.<id>..."
            )


def _order(steps: dict[str, Step]) -> list[Step]:
    """Steps in dependency order (each after what it needs, otherwise in definition
    order); a cycle is refused, naming its steps."""
    done: list[Step] = []
    finished: set[str] = set()
    for root in steps:
        if root in finished:
            continue
        # Iterative depth-first search: the trail is the path being explored, each
        # entry with the needs still to visit (a long chain cannot exhaust the stack).
        trail: list[tuple[str, list[str]]] = [(root, list(steps[root].needs))]
        on_trail = {root}
        while trail:
            step_id, needs = trail[-1]
            if not needs:
                trail.pop()
                on_trail.discard(step_id)
                finished.add(step_id)
                done.append(steps[step_id])
                continue
            need = needs.pop(0)
            if need in finished:
                continue
            if need in on_trail:
                path = [entry for entry, _ in trail]
                cycle = [*path[path.index(need) :], need]
                if len(cycle) > 12:  # a long cycle: its first and last steps
                    cycle = [*cycle[:6], f"... ({len(cycle) - 1} steps) ...", *cycle[-6:]]
                raise _bad(f"steps form a cycle: {' -> '.join(cycle)}")
            trail.append((need, list(steps[need].needs)))
            on_trail.add(need)
    return done


def parse(definition: Any) -> Workflow:
    """The validated :class:`Workflow` of a definition (see the module doc)."""
    if _depth(definition) > MAX_DEPTH:
        raise _bad(f"workflow definition is nested deeper than {MAX_DEPTH} levels")
    raw = checked_document(definition, "workflow definition")
    size = len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_BYTES:
        raise _bad(f"workflow definition is {size} bytes as JSON, over {MAX_BYTES}")
    unknown = sorted(set(raw) - {"inputs", "steps", "result", "description"})
    if unknown:
        raise _bad(f"workflow definition has an unknown field {_short(unknown[0])}")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise _bad("'description' must be a string")
    inputs = raw.get("inputs", [])
    if not isinstance(inputs, list) or not all(
        isinstance(i, str) and i.strip() and "." not in i and len(i) <= 128 for i in inputs
    ):
        raise _bad("'inputs' must be a list of input names (no '.', at most 128 characters)")
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise _bad("a workflow needs a non-empty list of 'steps'")
    if len(raw_steps) > MAX_STEPS:
        raise _bad(f"a workflow has at most {MAX_STEPS} steps")
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
                raise _bad(f"step {step.id!r} refers to unknown step {_short(need)}")
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
