"""kill -9 of a running ``market import`` leaves every committed batch, nothing torn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, text

from cryptotrading.db.session import unit_of_work
from cryptotrading.market import MarketStore
from cryptotrading.models.quality import DataIngestionJob
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, load_rows, settings_env

BATCH = 200


def _stored(market: MarketStore) -> int:
    return sum(info.rows for info in market.series())


@pytest.mark.slow
def test_kill_9_mid_import_keeps_committed_batches(
    make_settings: SettingsFactory, binance_dir: Path
) -> None:
    settings = make_settings("three")
    path = binance_dir / "BTC_USDT-5m.json"
    total = len(load_rows(path))
    env = {**os.environ, **settings_env(settings)}
    command = [
        sys.executable, "-c", "from cryptotrading.cli import main; main()",
        "market", "import", str(path), "-s", "BTC/USDT", "-t", "5m", "-e", "binance",
        "--batch-size", str(BATCH),
    ]  # fmt: skip
    with Stores(settings) as stores:
        market = MarketStore(stores)
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while _stored(market) < 5 * BATCH:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "import did not start"
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        stored = _stored(market)
        assert 5 * BATCH <= stored < total, "the kill must land mid-run"
        assert stored % BATCH == 0, "only whole batches may be committed"
        expected = np.asarray(load_rows(path)[:stored], dtype=np.float64)
        got = market.read_ohlcv("BTC/USDT", "5m", as_="numpy")
        assert got["timestamp"].tolist() == expected[:, 0].astype(np.int64).tolist()
        assert got["close"].tolist() == expected[:, 4].tolist()
        engine = stores.engine(stores.market)
        if engine.dialect.name == "sqlite":
            with engine.connect() as connection:
                assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    rerun = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f'"changed": {total - stored}' in rerun.stdout
    with Stores(settings) as stores:
        assert _stored(MarketStore(stores)) == total
        with unit_of_work(stores.engine(stores.app)) as session:
            jobs = session.scalars(select(DataIngestionJob).order_by(DataIngestionJob.id)).all()
            assert [job.status for job in jobs] == ["failed", "completed"]
            assert f"pid {child.pid}" in (jobs[0].error_message or "")
            # rebuilt from the batches committed with the candles (the job row itself
            # can lag one batch behind: it lives in the app store)
            assert jobs[0].rows_processed == stored
            assert f"{stored // BATCH} committed batch(es), {stored} candles" in (
                jobs[0].error_message or ""
            )


@pytest.mark.slow
def test_kill_9_mid_download_then_resume(make_settings: SettingsFactory, binance_dir: Path) -> None:
    from tests.market.recorded import bitstamp_ohlc_route, recorded_exchange

    settings = make_settings("three")
    path = binance_dir / "BTC_USDT-1h.json"
    rows = load_rows(path)
    expected = [row for row in rows if 1606780800000 <= row[0] < 1625097600000]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(root)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.market.download_worker", str(path)],
        env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    for _ in range(3):  # three pages committed
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else ""
    child.send_signal(signal.SIGKILL)
    child.wait()
    with Stores(settings) as stores:
        market = MarketStore(stores)
        kept = market.read_ohlcv("BTC/USDT", "1h", exchange="bitstamp", as_="numpy")
        assert 3 * 190 <= len(kept) < len(expected)
        assert kept["timestamp"].tolist() == [row[0] for row in expected[: len(kept)]]
        exchange = recorded_exchange("bitstamp", bitstamp_ohlc_route(rows), rateLimit=1)
        from cryptotrading.market.download import download_ohlcv

        result = download_ohlcv(
            market, exchange, symbol="BTC/USDT", timeframe="1h",
            since="2020-12-01", until="2021-07-01", limit=200,
        )  # fmt: skip
        assert result.resumed_from == int(kept["timestamp"][-1])
        final = market.read_ohlcv("BTC/USDT", "1h", exchange="bitstamp", as_="numpy")
        assert final["timestamp"].tolist() == [row[0] for row in expected]
        assert final["close"].tolist() == [row[4] for row in expected]
        with unit_of_work(stores.engine(stores.app)) as session:
            jobs = session.scalars(select(DataIngestionJob).order_by(DataIngestionJob.id)).all()
            assert [job.status for job in jobs] == ["failed", "completed"]
            assert (
                jobs[0].params is not None
                and jobs[0].params["cursor"] <= result.resumed_from + 3_600_000
            )
