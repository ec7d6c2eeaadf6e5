"""A job killed between a committed batch and its progress update still reports every
committed candle: the batch marker is written in the market store's transaction."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import select

from cryptotrading.db.session import unit_of_work
from cryptotrading.market import MarketStore
from cryptotrading.market.jobs import JobRecorder
from cryptotrading.models.quality import DataIngestionJob
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, settings_env

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from cryptotrading import Stores, load_settings
    from cryptotrading.market import MarketStore
    from cryptotrading.market.jobs import JobRecorder
    from cryptotrading.market.store import BatchMark

    rows = json.load(open(sys.argv[1]))[:300]
    with Stores(load_settings()) as stores:
        market = MarketStore(stores)
        job = JobRecorder(stores, job_type="import", source="binance", symbol="BTC/USDT",
                          timeframe="5m", params={}, committed=market.committed_batches)
        for number, begin in enumerate(range(0, 300, 100)):
            market.write_ohlcv(rows[begin:begin + 100], symbol="BTC/USDT", timeframe="5m",
                               exchange="binance", batch=BatchMark(job.job_id, number))
            if number < 2:
                job.progress(begin + 100, 0.0)
        # killed after the third batch committed, before its progress update
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_orphan_job_rows_are_rebuilt_from_committed_batches(
    make_settings: SettingsFactory, binance_dir: Path
) -> None:
    settings = make_settings("three")
    env = {**os.environ, **settings_env(settings)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(binance_dir / "BTC_USDT-5m.json")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    with Stores(settings) as stores:
        market = MarketStore(stores)
        with unit_of_work(stores.engine(stores.app)) as session:
            job = session.scalars(select(DataIngestionJob)).one()
            assert (job.status, job.rows_processed) == ("running", 200)  # one batch behind
        assert market.committed_batches(job.job_id) == (3, 300)
        JobRecorder(
            stores,
            job_type="import",
            source="binance",
            symbol="BTC/USDT",
            timeframe="5m",
            params={},
            committed=market.committed_batches,
        )
        with unit_of_work(stores.engine(stores.app)) as session:
            orphan = session.scalars(
                select(DataIngestionJob).where(DataIngestionJob.job_id == job.job_id)
            ).one()
            assert (orphan.status, orphan.rows_processed) == ("failed", 300)
            assert "3 committed batch(es), 300 candles" in (orphan.error_message or "")
        assert sum(info.rows for info in market.series()) == 300
