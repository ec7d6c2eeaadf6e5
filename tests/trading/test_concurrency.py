"""Two processes fill orders of one position at the same time: no lost update,
no overfill (SQLite: BEGIN IMMEDIATE; PostgreSQL: SELECT ... FOR UPDATE)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from cryptotrading.trading import get_order, get_position, submit_order
from tests.helpers import ROOT, SettingsFactory, make_user, settings_env

pytestmark = pytest.mark.slow  # multi-process trials (seconds each, kill -9)


def _start(settings: Settings, start: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, **settings_env(settings)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.trading.fill_worker", *args, str(start)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_two(
    settings: Settings, tmp_path: Path, first: list[str], second: list[str]
) -> list[dict[str, int]]:
    start = tmp_path / "go"
    workers = [_start(settings, start, *first), _start(settings, start, *second)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.ready.*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    start.touch()
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        results.append(json.loads(out))
    return results


def test_two_processes_filling_one_position_lose_no_update(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings("three")
    with Stores(settings) as stores:
        engine = stores.engine(stores.app)
        user = make_user(engine)
        buy, sell = (
            submit_order(
                engine,
                user_id=user,
                symbol="BTC/USDT",
                side=side,
                order_type="market",
                amount="100",
            ).order.order_id
            for side in ("buy", "sell")
        )
    count = 40
    results = _run_two(
        settings,
        tmp_path,
        [buy, str(count), "0.7", "30000.5", "0.01"],
        [sell, str(count), "0.3", "30100.25", "0.02"],
    )
    assert [r["ok"] for r in results] == [count, count]
    with Stores(settings) as stores:
        engine = stores.engine(stores.app)
        position = get_position(engine, user, "BTC/USDT")
        assert position.quantity == count * (Decimal("0.7") - Decimal("0.3"))
        assert position.fees_paid == count * Decimal("0.03")
        assert position.version == 2 * count  # one increment per fill: none lost
        assert get_order(engine, buy).filled_amount == count * Decimal("0.7")
        buy_times = [f["time"] for f in get_order(engine, buy).fills or []]
        sell_times = [f["time"] for f in get_order(engine, sell).fills or []]
        assert len(sell_times) == count
        # the two writers really ran at the same time: their fills interleave
        assert min(buy_times) < max(sell_times) and min(sell_times) < max(buy_times)


def test_two_processes_cannot_overfill_one_order(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings("three")
    with Stores(settings) as stores:
        engine = stores.engine(stores.app)
        user = make_user(engine)
        order = submit_order(
            engine, user_id=user, symbol="ETH/USDT", side="buy", order_type="market", amount="30"
        ).order.order_id
    args = [order, "25", "1", "1000", "0"]
    results = _run_two(settings, tmp_path, args, args)
    assert sum(r["ok"] for r in results) == 30
    assert sum(r["refused"] for r in results) == 20
    with Stores(settings) as stores:
        engine = stores.engine(stores.app)
        stored = get_order(engine, order)
        assert stored.status == "filled"
        assert stored.filled_amount == Decimal(30)
        assert len(stored.fills or []) == 30
        position = get_position(engine, user, "ETH/USDT")
        assert position.quantity == Decimal(30) and position.version == 30


def test_killed_filler_leaves_order_and_position_consistent(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    """SIGKILL a process in the middle of a stream of fills: every committed fill is
    in the order *and* the position, the one in flight in neither."""
    settings = make_settings("three")
    with Stores(settings) as stores:
        engine = stores.engine(stores.app)
        user = make_user(engine)
        order = submit_order(
            engine,
            user_id=user,
            symbol="BTC/USDT",
            side="buy",
            order_type="market",
            amount="1000000",
        ).order.order_id
    start = tmp_path / "go"
    start.touch()
    worker = _start(settings, start, order, "1000000", "0.001", "30000.5", "0.0001")
    with Stores(settings) as stores:
        engine = stores.engine(stores.app)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until some fills are committed
            if len(get_order(engine, order).fills or []) >= 20:
                break
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        assert worker.returncode == -signal.SIGKILL
        stored = get_order(engine, order)
        fills = len(stored.fills or [])
        assert fills >= 20
        position = get_position(engine, user, "BTC/USDT")
        assert stored.filled_amount == fills * Decimal("0.001") == position.quantity
        assert stored.fee == fills * Decimal("0.0001") == position.fees_paid
        assert position.version == fills
        assert stored.status == "partially_filled"
