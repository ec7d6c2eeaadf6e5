"""The change-log ranges of a SQLite batch: one per run of consecutive changed candles."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from cryptotrading.market.sqlite_io import MAX_RUNS, changed_runs


@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=300, unique=True).flatmap(
        lambda stamps: st.tuples(
            st.just(sorted(stamps)),
            st.lists(st.booleans(), min_size=len(stamps), max_size=len(stamps)),
        )
    )
)
def test_runs_cover_exactly_the_changed_candles(case: tuple[list[int], list[bool]]) -> None:
    stamps, flags = case
    timestamps = np.array(stamps, dtype=np.float64)
    changed = timestamps[np.array(flags, dtype=bool)]
    runs = changed_runs(timestamps, changed)
    if len(changed) == 0:
        assert runs == []
        return
    covered = {t for t in stamps if any(a <= t <= b for a, b in runs)}
    assert {int(t) for t in changed} <= covered
    if len(runs) < MAX_RUNS:  # no unchanged written candle inside a run
        assert covered == {int(t) for t in changed}
    assert runs == sorted(runs) and all(a <= b for a, b in runs)
