"""Workflow definitions: validation on save (a ValidationError naming the step, nothing
written), dependency order, references, limits -- and hostile definitions (Hypothesis)."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from cryptotrading import agents
from cryptotrading.agents.workflow_spec import (
    MAX_DEPTH,
    MAX_STEPS,
    MissingValue,
    parse,
    resolve,
)
from cryptotrading.errors import ValidationError
from cryptotrading.models import A2AWorkflowVersion
from cryptotrading.models.agents import A2AWorkflow
from tests.helpers import count_rows


def _step(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "agent": "worker", **fields}


GOOD: dict[str, Any] = {
    "inputs": ["symbol"],
    "steps": [
        _step("execute", after=["risk"], input={"s": "$steps.analyse", "v": "$steps.risk.ok"}),
        _step("analyse", input={"symbol": "$input.symbol"}, timeout_seconds=5),
        {"id": "risk", "capability": "risk", "input": {"signal": "$steps.analyse.signal"}},
    ],
    "result": {"order": "$steps.execute.order"},
}


def _written(engine: Engine) -> tuple[int, int]:
    return count_rows(engine, A2AWorkflow), count_rows(engine, A2AWorkflowVersion)


def test_a_definition_is_parsed_in_dependency_order_with_defaults() -> None:
    workflow = parse(GOOD)
    assert [s.id for s in workflow.steps] == ["analyse", "risk", "execute"]
    execute, analyse, risk = (
        workflow.step("execute"),
        workflow.step("analyse"),
        workflow.step("risk"),
    )
    assert execute.needs == ("analyse", "risk")  # from its references and "after"
    assert risk.needs == ("analyse",) and analyse.needs == ()
    assert (analyse.timeout_seconds, analyse.max_attempts, analyse.backoff_seconds) == (5, 3, 1)
    assert execute.timeout_seconds == 300 and execute.message_type == "workflow.execute"
    assert risk.capability == "risk" and risk.agent is None
    assert workflow.inputs == ("symbol",) and workflow.result == GOOD["result"]


BAD: list[tuple[dict[str, Any], str]] = [
    (
        {"steps": [_step("a", input={"x": "$steps.ghost.y"})]},
        "step 'a' refers to unknown step 'ghost'",
    ),
    ({"steps": [_step("a", after=["ghost"])]}, "step 'a' refers to unknown step 'ghost'"),
    ({"steps": [_step("a", input={"x": "$steps"})]}, "step 'a' refers to unknown step ''"),
    ({"steps": [_step("a", input={"x": "$input.symbol"})]}, "step 'a' uses input 'symbol'"),
    ({"steps": [_step("a", input=["$nowhere.x"])]}, "step 'a' has a reference to 'nowhere'"),
    ({"steps": [_step("a")], "result": "$steps.b"}, "the result refers to unknown step 'b'"),
    ({"steps": [_step("a"), _step("a")]}, "step id 'a' is used twice"),
    ({"steps": [_step("a", after=["a"])]}, "steps form a cycle: a -> a"),
    (
        {"steps": [_step("a", after=["c"]), _step("b", after=["a"]), _step("c", after=["b"])]},
        "steps form a cycle: a -> c -> b -> a",
    ),
    ({"steps": [_step("a", colour="red")]}, "step 'a': unknown field 'colour'"),
    ({"steps": [{"id": "a"}]}, "step 'a' needs exactly one of 'agent' or 'capability'"),
    ({"steps": [_step("a", capability="x")]}, "step 'a' needs exactly one"),
    ({"steps": [_step("a", agent=7)]}, "step 'a': agent must be a non-empty string"),
    ({"steps": [_step("a", agent=" ")]}, "step 'a': agent must be a non-empty string"),
    ({"steps": [_step("a", type="t" * 65)]}, "step 'a': type must be a non-empty string"),
    ({"steps": [_step("a", after="b")]}, "step 'a': 'after' must be a list"),
    ({"steps": [_step("a", timeout_seconds=0)]}, "step 'a': timeout_seconds must be"),
    ({"steps": [_step("a", timeout_seconds=True)]}, "step 'a': timeout_seconds must be"),
    ({"steps": [_step("a", timeout_seconds="5")]}, "step 'a': timeout_seconds must be"),
    ({"steps": [_step("a", retry={"max_attempts": 0})]}, "step 'a': retry.max_attempts"),
    ({"steps": [_step("a", retry={"max_attempts": 2.5})]}, "step 'a': retry.max_attempts"),
    ({"steps": [_step("a", retry={"backoff_seconds": -1})]}, "step 'a': retry.backoff"),
    ({"steps": [_step("a", retry={"jitter": 1})]}, "step 'a': retry takes max_attempts"),
    ({"steps": [_step("a", retry=[])]}, "step 'a': retry takes max_attempts"),
    ({"steps": [{"id": "a\n", "agent": "w"}]}, "step #1 has no valid id"),
    ({"steps": [_step("a"), {"id": "9lives", "agent": "w"}]}, "step #2 has no valid id"),
    ({"steps": [_step("a"), "b"]}, "step #2 is not an object"),
    ({"steps": []}, "non-empty list of 'steps'"),
    ({"steps": {"a": {}}}, "non-empty list of 'steps'"),
    ({}, "non-empty list of 'steps'"),
    ({"steps": [_step("a")], "inputs": "symbol"}, "'inputs' must be a list"),
    ({"steps": [_step("a")], "inputs": ["a.b"]}, "'inputs' must be a list"),
    ({"steps": [_step("a")], "owner": "me"}, "unknown field 'owner'"),
    ({"steps": [_step("a")], "description": 5}, "'description' must be a string"),
    ({"steps": [_step("a", input={"v": float("nan")})]}, "not strict JSON"),
    ({"steps": [_step(f"s{i}") for i in range(MAX_STEPS + 1)]}, "at most 1000 steps"),
    ({"steps": [_step("a")], "description": "x" * 1_100_000}, "bytes as JSON"),
]


@pytest.mark.parametrize(("definition", "message"), BAD)
def test_a_bad_definition_is_refused_naming_the_step(
    definition: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        parse(definition)
    assert message in str(refused.value)
    assert refused.value.hint


def test_define_workflow_writes_nothing_for_a_bad_definition(app_engine: Engine) -> None:
    for definition, message in BAD:
        with pytest.raises(ValidationError, match=re.escape(message)):
            agents.define_workflow(app_engine, "wf", definition)
    assert _written(app_engine) == (0, 0)


def test_a_refused_redefinition_keeps_the_current_version(app_engine: Engine) -> None:
    agents.define_workflow(app_engine, "wf", GOOD)
    with pytest.raises(ValidationError, match="cycle"):
        agents.define_workflow(app_engine, "wf", {"steps": [_step("a", after=["a"])]})
    assert agents.get_workflow(app_engine, "wf").version == 1
    assert _written(app_engine) == (1, 1)


def test_definitions_are_versioned(app_engine: Engine) -> None:
    first = agents.define_workflow(app_engine, "wf", GOOD, name="Trade")
    same = agents.define_workflow(app_engine, "wf", GOOD, name="Trade")
    assert first.version == same.version == 1
    changed = {**GOOD, "description": "with a description"}
    assert agents.define_workflow(app_engine, "wf", changed, name="Trade").version == 2
    assert agents.define_workflow(app_engine, "wf", changed, name="Renamed").version == 3
    assert agents.workflow_version(app_engine, "wf", 1).definition == GOOD
    assert agents.get_workflow(app_engine, "wf").definition == changed
    assert _written(app_engine) == (1, 3)


def test_a_long_chain_and_the_deepest_allowed_mapping_parse() -> None:
    chain = [
        _step(f"s{i}", after=[f"s{i + 1}"] if i + 1 < MAX_STEPS else []) for i in range(MAX_STEPS)
    ]
    workflow = parse({"steps": chain})
    assert workflow.steps[0].id == f"s{MAX_STEPS - 1}" and workflow.steps[-1].id == "s0"
    nested: Any = "$input"
    for _ in range(MAX_DEPTH - 4):  # definition, steps, step, input: 4 levels already
        nested = [nested]
    assert parse({"inputs": [], "steps": [_step("a", input={"x": nested})]}).steps[0].id == "a"
    with pytest.raises(ValidationError, match=f"nested deeper than {MAX_DEPTH}"):
        parse({"steps": [_step("a", input={"x": [nested, [[[1]]]]})]})
    deep: Any = 1
    for _ in range(5000):  # beyond the interpreter's recursion limit: still a named error
        deep = {"x": deep}
    with pytest.raises(ValidationError, match="nested deeper"):
        parse({"steps": [_step("a", input=deep)]})


def test_a_long_cycle_is_named_by_its_ends() -> None:
    ring = [_step(f"s{i}", after=[f"s{(i + 1) % 40}"]) for i in range(40)]
    with pytest.raises(
        ValidationError, match=r"cycle: s0 -> s1 .* \.\.\. \(40 steps\) \.\.\. .* s39 -> s0"
    ):
        parse({"steps": ring})


def test_references_resolve_against_inputs_and_outputs() -> None:
    inputs = {"symbol": "BTC/USDT", "size": {"max": 2}}
    outputs = {"a": {"signal": "buy", "levels": [1, 2]}, "b": {"ok": True}}
    mapping = {
        "symbol": "$input.symbol",
        "max": "$input.size.max",
        "all": "$input",
        "a": "$steps.a",
        "nested": ["$steps.b.ok", {"lv": "$steps.a.levels"}],
        "literal": "$$input.symbol",
        "plain": "input.symbol",
        "number": 3,
    }
    assert resolve(mapping, inputs, outputs) == {
        "symbol": "BTC/USDT",
        "max": 2,
        "all": inputs,
        "a": outputs["a"],
        "nested": [True, {"lv": [1, 2]}],
        "literal": "$input.symbol",
        "plain": "input.symbol",
        "number": 3,
    }
    for missing in ("$steps.a.absent", "$steps.a.signal.deeper", "$input.size.min", "$steps.c"):
        with pytest.raises(MissingValue, match=re.escape(missing)):
            resolve({"x": missing}, inputs, outputs)


# -- hostile definitions ----------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["$input", "$steps", "$steps.a", "$steps.a.b", "$$x", "$", "$input.", "a"]),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.sampled_from(sorted({"id", "agent", "steps"}))),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=25,
)
_KEYS = ["id", "agent", "capability", "input", "after", "timeout_seconds", "retry", "type"]
_STEP = st.fixed_dictionaries(
    {"id": st.sampled_from(["a", "b", "c"]) | st.text(max_size=5)},
    optional={key: _JSON | st.sampled_from(["a", "b", ["a"], ["b", "c"], 1]) for key in _KEYS[1:]},
)
_DEFINITIONS = st.one_of(
    _JSON,
    st.fixed_dictionaries(
        {"steps": st.lists(_STEP | _JSON, max_size=4)},
        optional={"inputs": _JSON | st.just(["x"]), "result": _JSON, "description": _JSON},
    ),
)


def _nested(depth: int) -> Any:
    value: Any = "$steps.a"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


_DEEP = st.integers(min_value=MAX_DEPTH - 5, max_value=3000).map(
    lambda depth: {"steps": [_step("a"), _step("b", input=_nested(depth))]}
)


@settings(max_examples=300, deadline=None)
@given(definition=st.one_of(_DEFINITIONS, _DEEP))
def test_hostile_definitions_raise_only_validation_errors(definition: Any) -> None:
    try:
        workflow = parse(definition)
    except ValidationError as error:
        assert error.hint and len(str(error)) < 2000
        return
    ids = [step.id for step in workflow.steps]
    assert len(ids) == len(set(ids))
    for position, step in enumerate(workflow.steps):
        assert set(step.needs) <= set(ids[:position])  # each after what it needs


_GRAPHS = st.integers(min_value=1, max_value=12).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n),
        st.lists(st.booleans(), min_size=3 * n, max_size=3 * n),
    )
)


def _has_cycle(n: int, edges: set[tuple[int, int]]) -> bool:
    remaining = set(range(n))
    while True:  # peel off steps that need nothing that remains
        free = {v for v in remaining if not any(a == v and b in remaining for a, b in edges)}
        if not free:
            return bool(remaining)
        remaining -= free


def _graph_definition(graph: tuple[int, list[tuple[int, int]], list[bool]]) -> dict[str, Any]:
    """Steps s0..s(n-1); an edge (a, b) makes s<a> need s<b>, through its "after" or a
    reference in its input."""
    n, pairs, as_reference = graph
    steps: list[dict[str, Any]] = []
    for v in range(n):
        needs = sorted({b for a, b in pairs if a == v})
        after = [f"s{b}" for i, b in enumerate(needs) if not as_reference[i]]
        refs = {f"r{b}": f"$steps.s{b}.out" for i, b in enumerate(needs) if as_reference[i]}
        steps.append(_step(f"s{v}", after=after, input=refs))
    return {"steps": steps}


@settings(max_examples=300, deadline=None)
@given(graph=_GRAPHS)
def test_random_graphs_parse_in_order_or_name_a_real_cycle(
    graph: tuple[int, list[tuple[int, int]], list[bool]],
) -> None:
    n, pairs, _ = graph
    edges = set(pairs)  # (a, b): step a needs step b
    steps = _graph_definition(graph)["steps"]
    if _has_cycle(n, edges):
        with pytest.raises(ValidationError, match="steps form a cycle: ") as refused:
            parse({"steps": steps})
        named = str(refused.value).split("cycle: ", 1)[1].split(" -> ")
        assert named[0] == named[-1]
        for needer, needed in itertools.pairwise(named):
            if "..." not in needer + needed:  # the named steps form the cycle
                assert (int(needer[1:]), int(needed[1:])) in edges
        return
    order = [step.id for step in parse({"steps": steps}).steps]
    for a, b in edges:
        assert order.index(f"s{b}") < order.index(f"s{a}")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(definition=st.one_of(_DEFINITIONS, _DEEP, _GRAPHS.map(_graph_definition)))
def test_hostile_definitions_are_refused_without_writing(
    app_engine: Engine, definition: Any
) -> None:
    before = _written(app_engine)
    try:
        workflow = agents.define_workflow(app_engine, "hostile", definition)
    except ValidationError:
        assert _written(app_engine) == before
        return
    assert agents.get_workflow(app_engine, "hostile").version == workflow.version
