"""``ops run``: the spec's cadence as due jobs, bookkeeping, failures and the lock."""

from __future__ import annotations

import fcntl
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select, update

from cryptotrading.models import CacheEntry, ErrorLog, FeatureCache, SystemMetric
from cryptotrading.ops import backup, scheduler
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, count_rows, invoke
from tests.ops.helpers import insert_candles


def test_first_run_runs_every_job_then_only_what_is_due(stores: Stores, backup_dir: Path) -> None:
    insert_candles(stores.engine("market"), 0, 30)
    options = scheduler.RunOptions(backup_dir=backup_dir)
    first = {r.job: r for r in scheduler.run_due(stores, options)}
    assert set(first) == {j.name for j in scheduler.JOBS}
    assert all(r.status in ("ok", "skipped") for r in first.values()), first
    assert first["replicate"].detail["rows"] >= 30
    # The 2021 candles are older than 90 days: archived after they were replicated.
    assert first["archive"].status == "ok" and first["archive"].detail["rows"] == 30
    assert count_rows(stores.engine("market"), "time_series") == 0
    assert list((stores.settings.data_dir / "archive").rglob("*.parquet"))
    # replicate ran before archive in this round; the next pass follows the archive's
    # deletes (the candles live on in the Parquet archive and its backups)
    assert count_rows(stores.engine("replica"), "time_series") == 30
    kinds = sorted((m.store, m.kind) for m in backup.list_backups(backup_dir))
    assert kinds == [("app", "daily"), ("app", "weekly"), ("market", "weekly")]

    assert scheduler.run_due(stores, options) == []  # nothing is due any more

    # An hour and a bit later: replicate, health and cache expiry are due again.
    with stores.engine("app").begin() as connection:
        connection.execute(
            update(SystemMetric)
            .where(SystemMetric.metric_name == scheduler.OK_METRIC)
            .values(recorded_at=datetime.now(UTC) - timedelta(minutes=61))
        )
    due = {j.name for j in scheduler.due_jobs(stores)}
    assert {"replicate", "health", "cache-expiry"} <= due
    assert not {"backup-daily", "backup-weekly"} & due


def test_cache_expiry_deletes_only_expired_rows(stores: Stores) -> None:
    now = datetime.now(UTC)
    with stores.engine("app").begin() as connection:
        connection.execute(
            insert(CacheEntry),
            [
                {"cache_key": "old", "value": {}, "expires_at": now - timedelta(seconds=1)},
                {"cache_key": "fresh", "value": {}, "expires_at": now + timedelta(hours=1)},
                {"cache_key": "forever", "value": {}, "expires_at": None},
            ],
        )
        connection.execute(
            insert(FeatureCache),
            [{"feature_key": "f", "symbol": "BTC/USDT", "feature_value": {},
              "expires_at": now - timedelta(days=1)}],
        )  # fmt: skip
    deleted = scheduler.expire_caches(stores)
    assert deleted == {"cache_entries": 1, "feature_cache": 1, "historical_data_cache": 0}
    with stores.engine("app").connect() as connection:
        keys = set(connection.execute(select(CacheEntry.cache_key)).scalars())
    assert keys == {"fresh", "forever"}


def test_failed_job_is_recorded_logged_and_retried(stores: Stores, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    options = scheduler.RunOptions(backup_dir=not_a_dir / "backups")
    [result] = scheduler.run_due(stores, options, only=["backup-daily"])
    assert result.status == "failed"
    assert "cannot create backup directory" in (result.error or "")
    with stores.engine("app").connect() as connection:
        failed = connection.execute(
            select(func.count()).where(SystemMetric.metric_name == scheduler.FAILED_METRIC)
        ).scalar_one()
        traces = connection.execute(select(ErrorLog.stack_trace, ErrorLog.component)).all()
    assert failed == 1
    assert traces and "DataDirError" in (traces[0][0] or "")
    assert traces[0][1] == "cryptotrading.ops.scheduler"
    assert "backup-daily" in {j.name for j in scheduler.due_jobs(stores)}  # still due


def test_a_second_run_waits_for_none_while_the_lock_is_held(stores: Stores) -> None:
    lock = stores.settings.data_dir / ".ops-run.lock"
    stores.settings.data_dir.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        assert scheduler.run_due(stores) == []
        fcntl.flock(handle, fcntl.LOCK_UN)
    assert scheduler.run_due(stores, only=["cache-expiry"])[0].status == "ok"


def test_cli_ops_run_schedule_and_cron(make_settings: SettingsFactory, backup_dir: Path) -> None:
    settings = make_settings()
    result = invoke(settings, "ops", "run", "--json", "--dir", str(backup_dir))
    assert result.exit_code == 0, result.stderr
    assert {r["job"] for r in json.loads(result.stdout)} == {j.name for j in scheduler.JOBS}
    schedule = json.loads(invoke(settings, "ops", "schedule", "--json").stdout)
    due = {row["job"]: row["due"] for row in schedule}
    assert not any(due.values())
    forced = invoke(settings, "ops", "run", "--job", "cache-expiry", "--json")
    assert [r["job"] for r in json.loads(forced.stdout)] == ["cache-expiry"]
    unknown = invoke(settings, "ops", "run", "--job", "nope")
    assert unknown.exit_code == 5 and "unknown job 'nope'" in unknown.stderr
    cron = invoke(settings, "ops", "cron")
    assert cron.exit_code == 0 and "ops run" in cron.stdout and cron.stdout.startswith("#")


def test_change_log_job_archives_then_trims_below_every_reader(
    stores: Stores, backup_dir: Path
) -> None:
    from cryptotrading.ops import replication
    from tests.helpers import make_user

    for n in range(3):
        make_user(stores.engine("app"), f"log{n}")
    replication.replicate_once(stores)
    options = scheduler.RunOptions(backup_dir=backup_dir)
    result = scheduler.run_job(stores, scheduler.job("change-log"), options)
    assert result.status == "ok", result.error
    if stores.app.backend == "sqlite":  # archived for point-in-time recovery, then trimmed
        assert result.detail["archived"]["entries"] >= 3
    else:  # PostgreSQL recovers with pgBackRest: trimmed below the replica alone
        assert result.detail["archived"] is None
    assert result.detail["trimmed"]["change_log"] >= 3
    with stores.engine("app").connect() as connection:  # only the job's own record is left
        left = connection.exec_driver_sql("SELECT table_name FROM change_log").scalars().all()
    assert left == ["system_metrics"]
