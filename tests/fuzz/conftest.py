"""The fuzz suite's fixture: one initialised data dir (a template copy) per test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptotrading.stores import Stores
from tests.fuzz.harness import Fuzzer
from tests.helpers import SettingsFactory, make_user


@pytest.fixture
def fuzzer(make_settings: SettingsFactory, tmp_path: Path) -> Iterator[Fuzzer]:
    """A :class:`Fuzzer` on fresh stores of the three-store layout."""
    work = tmp_path / "work"
    work.mkdir()
    fuzz = Fuzzer(make_settings("three"), work)
    yield fuzz
    fuzz.close()


HOUR_MS = 3_600_000
START_MS = 1_609_459_200_000  # 2021-01-01T00:00:00Z


@pytest.fixture
def seeded(fuzzer: Fuzzer) -> Fuzzer:
    """A user ``alice``, 48 hourly BTC/USDT candles from 2021-01-01, an analysis,
    insight and pending decision, an order and a registered model ``m`` 1.0.0; their
    ids are in ``fuzzer.facts`` (``analysis``, ``insight``, ``decision``, ``order_id``)."""
    with Stores(fuzzer.settings) as stores:
        make_user(stores.engine(stores.app), "alice")
    rows = [
        [START_MS + i * HOUR_MS, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 10.0] for i in range(48)
    ]
    candles = fuzzer.workdir / "seed.json"
    candles.write_text(json.dumps(rows))
    fuzzer.ok(["market", "import", str(candles), "-s", "BTC/USDT", "-t", "1h"])
    at = "--at=2021-01-01T00:00:00Z"
    facts = fuzzer.facts

    def made(*args: str) -> str:
        return str(json.loads(fuzzer.ok([*args, "--json"]).stdout)["id"])

    analyze = ["decisions", "analyze", "--symbol=BTC/USDT", "--model=m", "--type=t"]
    facts["analysis"] = made(*analyze, "--signal=bullish", "--confidence=0.7", at)
    insight = ["decisions", "insight", f"--analysis={facts['analysis']}", "--type=entry"]
    facts["insight"] = made(*insight, "--recommendation=buy", "--confidence=0.7", at)
    decide = ["decisions", "decide", facts["insight"], "--user=alice", "--quantity=1", at]
    facts["decision"] = made(*decide)
    submit = ["orders", "submit", "--user=alice", "--symbol=BTC/USDT", "--side=buy"]
    order = fuzzer.ok([*submit, "--type=limit", "--price=100", "--amount=2", "--json"])
    facts["order_id"] = json.loads(order.stdout)["order_id"]
    fuzzer.ok(["models", "register", "m", "1.0.0"])
    return fuzzer
