"""bench/bench_agents.py runs end to end with ``--quick`` (so it cannot rot), and the
correctness figures it reports hold: every message delivered exactly once to one
consumer, on both backends, and the latency part measured every send."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def test_bench_agents_quick(backend: str) -> None:
    command = [sys.executable, str(ROOT / "bench" / "bench_agents.py"), "--quick", "--json"]
    done = subprocess.run(
        [*command, "--backend", backend],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [result] = json.loads(done.stdout)
    assert result["backend"] == backend
    runs = {(run["mode"], run["consumers"]): run for run in result["runs"]}
    assert set(runs) == {(mode, n) for mode in ("naive", "library") for n in (1, 2)}
    for run in runs.values():
        assert run["messages"] == 200 and sum(run["per_consumer"]) == 200
        assert not any(run["faults"].values()), run["faults"]
        assert run["send_per_s"] > 0 and run["drain_per_s"] > 0
    assert runs[("library", 1)]["conflicts"] == 0
    assert [ratio["consumers"] for ratio in result["ratios"]] == [1, 2]
    assert {(run["mode"], run["consumers"]) for run in result["summary"]} == set(runs)
    assert all(run["faults"] == 0 and run["rounds"] == 1 for run in result["summary"])
    latency = result["latency"]
    assert latency["sends"] == 20
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["max_ms"]
