"""Concurrent writers (threads with their own connections) on both backends: no
duplicate rows, no lost version bumps, no repeated turn indexes."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine

from cryptotrading import agents
from cryptotrading.models.agents import A2AAgent, AgentContext, AgentMemory
from cryptotrading.models.code import CodeFile, Issue
from cryptotrading.services import code_scan, memory
from tests.helpers import count_rows

THREADS = 4


def in_parallel(task: Callable[[int], Any], n: int = THREADS) -> list[Any]:
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(task, range(n)))


def test_concurrent_registrations_and_keyed_writes(app_engine: Engine) -> None:
    in_parallel(lambda i: agents.register_agent(app_engine, "shared", f"type-{i}"))
    assert count_rows(app_engine, A2AAgent) == 1
    in_parallel(lambda i: agents.set_context(app_engine, "shared", "session", {"i": i}))
    in_parallel(lambda i: agents.remember(app_engine, "shared", "fact", f"v{i}", key="k"))
    assert count_rows(app_engine, AgentContext) == 1 and count_rows(app_engine, AgentMemory) == 1


def test_concurrent_workflow_updates_bump_once_each(app_engine: Engine) -> None:
    def steps(i: int) -> dict[str, object]:
        return {"steps": [{"id": f"s{i + 1}", "agent": "a"}]}

    agents.define_workflow(app_engine, "wf", steps(-1))
    versions = in_parallel(lambda i: agents.define_workflow(app_engine, "wf", steps(i)).version)
    assert sorted(versions) == list(range(2, 2 + THREADS))
    assert agents.get_workflow(app_engine, "wf").version == 1 + THREADS


def test_concurrent_turns_get_distinct_indexes(app_engine: Engine, user_id: int) -> None:
    sid = memory.start_session(app_engine, user_id, "trader").session_id

    def turns(i: int) -> list[int]:
        return [
            memory.record_turn(app_engine, sid, user_input=f"{i}-{j}").turn_index for j in range(5)
        ]

    indexes = [index for batch in in_parallel(turns) for index in batch]
    assert sorted(indexes) == list(range(5 * THREADS))


def test_concurrent_scans_do_not_duplicate(app_engine: Engine, tmp_path: Any) -> None:
    (tmp_path / "a.py").write_text("def f(x):\n    if x:\n        return 1\n    return 2\n")
    (tmp_path / "b.py").write_text("x = 1\n")
    reports = in_parallel(lambda _i: code_scan.scan_tree(app_engine, tmp_path, threshold=1), n=3)
    assert sum(r.new for r in reports) == 2 and sum(r.issues_opened for r in reports) == 1
    assert count_rows(app_engine, CodeFile) == 2 and count_rows(app_engine, Issue) == 1
