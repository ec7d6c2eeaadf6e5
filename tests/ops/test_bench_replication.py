"""bench/bench_replication.py runs end to end with tiny sizes (so it cannot rot), and the
correctness figures it reports hold: nothing copied twice, changes reach the replica,
no change lost or reverted under load, ``--follow`` stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def test_bench_replication_tiny(backend: str) -> None:
    command = [
        *(sys.executable, str(ROOT / "bench" / "bench_replication.py"), "--backend", backend),
        *("--rows-per-symbol", "300", "--repeat", "2", "--changed", "30"),
        *("--rate", "400", "--lag-seconds", "2", "--intervals", "0.1", "--delete-age", "1"),
        *("--idle-seconds", "1", "--json"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    [result] = json.loads(done.stdout)
    assert result["backend"] == backend

    capture = result["capture"]
    assert len(capture["ratios"]) == 2 and capture["ratio_best"] > 0
    assert 1 <= capture["series_log_rows"] <= 10  # a range per batch, not per candle

    imported = result["import"]
    assert imported["pass_candles"] == imported["candles"] == 3000
    assert imported["next_pass_rows"] == 0
    assert imported["changed_candles"] == 30
    assert imported["reimport_pass_rows"] >= 30
    assert imported["changed_wrong_in_replica"] == 0
    assert imported["after_reimport_pass_rows"] == 0
    assert imported["replica_candles"] == imported["source_candles"] == 3000

    idle = result["idle"]
    assert idle["rows_copied"] == 0 and idle["in_process_pass_rows"] == 0
    assert idle["follow_rc"] == 0 and not idle["follow_traceback"]

    [lag] = result["lag"]
    assert lag["changes"] > 0 and lag["unresolved"] == 0 and lag["regressions"] == 0
    assert set(lag["by_op"]) == {f"{t}:{op}" for t in ("sql", "lib") for op in "iud"}
    assert 0 <= lag["median"] <= lag["p95"] <= lag["max"]
    assert lag["follow_rc"] == 0 and not lag["follow_traceback"]
