"""kill -9 of the replicator at random points: afterwards the replica holds every
row exactly once, and between kills it never holds a row the source does not."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import pytest

from cryptotrading.db.engine import READ_ONLY
from cryptotrading.ops import replication
from cryptotrading.stores import Stores
from tests.helpers import ROOT, SettingsFactory, make_user, settings_env
from tests.ops.helpers import assert_in_step, insert_candles, insert_metrics, put_cache, table_rows

TRIALS = 20
TABLES = ("time_series", "system_metrics", "users", "cache_entries")


@pytest.mark.slow
def test_kill_9_at_random_points_loses_and_duplicates_nothing(
    make_settings: SettingsFactory,
) -> None:
    seed = int(os.environ.get("KILL_SEED", time.time()))
    rng = random.Random(seed)
    settings = make_settings()
    env = {**os.environ, **settings_env(settings)}
    killed_mid_run = partial = 0
    with Stores(settings) as stores:
        app, market, replica = (stores.engine(n) for n in ("app", "market", "replica"))
        # Calibrate: how long one uninterrupted pass takes here; kills land within it.
        insert_candles(market, -60, 60, "CAL/USDT")
        calibration = subprocess.run(
            [sys.executable, "-m", "tests.ops.replicator", "7"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert "done" in calibration.stdout
        window = float(calibration.stdout.split()[-1])
        for trial in range(TRIALS):
            insert_candles(market, trial * 60, 60, rng.choice(["BTC/USDT", "ETH/USDT"]))
            insert_metrics(app, 4, f"trial.{trial}")
            make_user(app, f"user{trial}")
            put_cache(app, f"key{trial % 3}", {"trial": trial})
            victim = subprocess.Popen(
                [sys.executable, "-m", "tests.ops.replicator", "7"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert victim.stdout is not None
            assert victim.stdout.readline().strip() == "started"
            time.sleep(rng.uniform(0.0, window))
            victim.kill()
            rest, _ = victim.communicate()
            killed_mid_run += "done" not in rest
            # Whatever the replica holds now is a subset of the source, and its
            # cursors are whole JSON documents.
            with replica.connect() as connection:
                cursors = connection.exec_driver_sql(
                    "SELECT position FROM replication_cursors"
                ).scalars()
                for position in cursors:
                    json.loads(position)
            for name in TABLES:
                source_engine = market if name == "time_series" else app
                copied = table_rows(replica, name)
                source = table_rows(source_engine, name)
                partial += 0 < len(copied) < len(source)
                if name == "cache_entries":
                    assert {r[0] for r in copied} <= {r[0] for r in source}, (seed, trial)
                else:
                    assert set(copied) <= set(source), (seed, trial, name)
                    assert len(copied) == len(set(copied))
        print(f"seed {seed}: {killed_mid_run} kills mid-run, {partial} with a partial copy")
        assert killed_mid_run >= TRIALS // 2, f"most kills should hit a running replicator ({seed})"
        replication.replicate_once(stores)
        assert_in_step(stores, *TABLES)
        assert len(table_rows(replica, "time_series")) == TRIALS * 60 + 60
        assert len(table_rows(replica, "users")) == TRIALS


@pytest.mark.slow
def test_a_reader_of_the_replica_sees_whole_batches_only(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    env = {**os.environ, **settings_env(settings)}
    with Stores(settings) as stores:
        insert_candles(stores.engine("market"), 0, 6000)  # one ingested_at: keyset order by PK
        batch = 10 if stores.market.backend == "sqlite" else 50  # ~ a few seconds of commits
        replica = stores.engine("replica")
        replicator = subprocess.Popen(
            [sys.executable, "-m", "tests.ops.replicator", str(batch)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        seen = set()
        try:
            while replicator.poll() is None:
                # A reader's deferred BEGIN: in WAL mode it never waits for the writer
                # (BEGIN IMMEDIATE would queue behind every replica commit).
                with replica.connect().execution_options(**{READ_ONLY: True}) as connection:
                    count = connection.exec_driver_sql("SELECT count(*) FROM time_series").scalar()
                seen.add(int(count or 0))
                time.sleep(0.005)
        finally:
            replicator.wait()
        assert replicator.returncode == 0
        assert all(count % batch == 0 for count in seen), sorted(seen)
        assert len(seen) > 2, "the reader should have seen the copy in progress"
        assert len(table_rows(replica, "time_series")) == 6000
