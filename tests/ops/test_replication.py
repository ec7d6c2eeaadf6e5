"""Replication: incremental, idempotent, with lag per table, on both backends."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from cryptotrading.errors import ConfigurationError
from cryptotrading.models import CacheEntry
from cryptotrading.ops import replication
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, invoke, make_user, run_cli
from tests.ops.helpers import assert_in_step, insert_candles, insert_metrics, put_cache, table_rows


def test_first_run_copies_everything_then_only_changes(stores: Stores) -> None:
    insert_candles(stores.engine("market"), 0, 120)
    insert_metrics(stores.engine("app"), 30)
    make_user(stores.engine("app"), "alice")
    put_cache(stores.engine("app"), "k1", {"v": 1})

    runs = {r.table: r for r in replication.replicate_once(stores, batch_size=50)}
    assert runs["market.time_series"].rows == 120
    assert runs["market.time_series"].batches == 3
    assert runs["app.system_metrics"].rows == 30
    assert runs["app.users"].rows == 1
    assert_in_step(stores, "time_series", "system_metrics", "users", "cache_entries")

    # Second run: exactly what changed; a third with nothing new copies nothing.
    insert_candles(stores.engine("market"), 120, 10)
    put_cache(stores.engine("app"), "k1", {"v": 2})
    again = {r.table: r for r in replication.replicate_once(stores, batch_size=50)}
    assert again["market.time_series"].rows == 10
    assert again["app.system_metrics"].rows == 0
    assert again["app.cache_entries"].rows == 1
    assert_in_step(stores, "time_series", "system_metrics", "users", "cache_entries")
    idle = replication.replicate_once(stores, batch_size=50)
    assert sum(r.rows for r in idle) == 0

    lags = {lag.table: lag for lag in replication.status(stores)}
    assert lags["market.time_series"].pending_changes == 0
    assert lags["app.cache_entries"].pending_changes == 0


def test_status_reports_pending_changes_and_their_age(stores: Stores) -> None:
    engine = stores.engine("market")
    insert_candles(engine, 0, 40)
    make_user(stores.engine("app"), "erin")
    before = {lag.table: lag for lag in replication.status(stores)}
    assert before["app.users"].pending_changes == 1  # no pass yet: every row waits
    assert before["app.users"].replicated_at is None
    replication.replicate_once(stores)
    with engine.begin() as connection:
        from cryptotrading.models import TimeSeries

        rows = [
            dict(r) for r in connection.execute(select(TimeSeries.__table__).limit(5)).mappings()
        ]
        for n, row in enumerate(rows):
            row.update(timestamp=row["timestamp"] + 10**12 + n)
        connection.execute(insert(TimeSeries.__table__), rows)
    with stores.engine("app").begin() as connection:
        connection.exec_driver_sql("UPDATE users SET email = 'erin@new.example'")
    time.sleep(0.05)
    lags = {lag.table: lag for lag in replication.status(stores)}
    # One range per statement on PostgreSQL, one per candle written by plain SQL on SQLite.
    assert lags["market.time_series"].pending_changes in (1, 5)
    assert lags["app.users"].pending_changes == 1
    age = lags["app.users"].oldest_pending_seconds
    assert age is not None and 0.04 <= age < 60
    assert lags["app.system_metrics"].pending_changes == 0
    replication.replicate_once(stores)
    lag = {lag.table: lag for lag in replication.status(stores)}["market.time_series"]
    assert (lag.pending_changes, lag.oldest_pending_seconds) == (0, None)
    assert lag.replicated_at is not None


def test_no_replica_is_a_configuration_error(make_settings: SettingsFactory) -> None:
    with Stores(make_settings("two")) as stores, pytest.raises(ConfigurationError) as caught:
        replication.replicate_once(stores)
    assert "CRYPTOTRADING_REPLICA_URL" in caught.value.hint


def test_replica_of_two_store_layout_via_url(make_settings: SettingsFactory) -> None:
    target = make_settings("three")
    replica_url = target.replica_url or f"sqlite:///{target.data_dir / 'rex.db'}"
    with Stores(make_settings("two", replica_url=replica_url)) as stores:
        insert_candles(stores.engine("market"), 0, 25)
        make_user(stores.engine("app"), "bob")
        replication.replicate_once(stores)
        assert_in_step(stores, "time_series", "users")


def _fingerprint(stores: Stores) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return (
        table_rows(stores.engine("market"), "time_series"),
        table_rows(stores.engine("app"), "users"),
    )


def test_read_only_replica_gives_clear_error_source_untouched(
    make_settings: SettingsFactory, backend: str
) -> None:
    import shutil
    import uuid

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    settings = make_settings()
    with Stores(settings) as stores:
        insert_candles(stores.engine("market"), 0, 30)
        make_user(stores.engine("app"), "carol")
        before = _fingerprint(stores)
        replica = stores.get("replica")
    prefix: tuple[str, ...] = ()
    extra: dict[str, str] = {}
    if replica.path is not None:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) not installed")
        replica.path.chmod(0o444)
        # As root, permissions do not stop writes; drop the capability that overrides them.
        prefix = ("setpriv", "--bounding-set=-dac_override", "--inh-caps=-dac_override")
    else:
        role = f"ct_ro_{uuid.uuid4().hex[:8]}"
        url = make_url(replica.url)
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
            connection.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        admin.dispose()
        extra = {
            "CRYPTOTRADING_REPLICA_URL": url.set(username=role).render_as_string(
                hide_password=False
            )
        }
    try:
        result = run_cli(settings, "replicate", prefix=prefix, extra_env=extra)
    finally:
        if replica.path is not None:
            replica.path.chmod(0o600)
        else:
            admin = create_engine(make_url(replica.url), isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.exec_driver_sql(f"DROP OWNED BY {role}")
                connection.exec_driver_sql(f"DROP ROLE {role}")
            admin.dispose()
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "error: replica" in result.stderr, result.stderr
    # SQLite: a read-only file; PostgreSQL: a role that may not write (or, first, may not
    # drop the replica's capture triggers: only the owner may).
    assert any(
        reason in result.stderr for reason in ("read-only", "permission denied", "must be owner")
    ), result.stderr
    assert "hint: Make the replica writable" in result.stderr
    with Stores(settings) as stores:
        assert _fingerprint(stores) == before
        assert table_rows(stores.engine("replica"), "time_series") == []


def test_cli_replicate_and_status_json(make_settings: SettingsFactory) -> None:
    import json

    settings = make_settings()
    with Stores(settings) as stores:
        insert_candles(stores.engine("market"), 0, 12)
    first = invoke(settings, "replicate", "--json", "--batch-size", "5")
    assert first.exit_code == 0, first.stderr
    runs = {r["table"]: r for r in json.loads(first.stdout)}
    assert (runs["market.time_series"]["rows"], runs["market.time_series"]["batches"]) == (12, 3)
    status = json.loads(invoke(settings, "replicate", "status", "--json").stdout)
    series = next(s for s in status if s["table"] == "market.time_series")
    assert (series["mode"], series["pending_changes"]) == ("change-log", 0)
    bad = invoke(settings, "replicate", "--batch-size", "0")
    assert bad.exit_code == 2 and "batch-size" in bad.stderr


def test_replica_on_the_other_backend(
    make_settings: SettingsFactory, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """SQLite stores replicate into PostgreSQL and vice versa: decimals, datetimes,
    JSON and binary columns survive the trip."""
    from decimal import Decimal

    from cryptotrading.models import PortfolioPosition
    from tests.conftest import sqlite_templates

    lineages = ("app", "market")
    server = None
    if backend == "sqlite":
        server = request.getfixturevalue("pg_server")
        replica_url = server.acquire(lineages)
    else:
        target = tmp_path / "rex.db"
        shutil.copyfile(sqlite_templates("three") / "rex.db", target)
        replica_url = f"sqlite:///{target}"
    try:
        with Stores(make_settings("two", replica_url=replica_url)) as stores:
            insert_candles(stores.engine("market"), 0, 40)
            user = make_user(stores.engine("app"), "dora")
            put_cache(stores.engine("app"), "doc", {"nested": [1, 2.5, "x"], "ok": True})
            with stores.engine("app").begin() as connection:
                connection.execute(
                    insert(PortfolioPosition),
                    {"user_id": user, "symbol": "BTC/USDT", "quantity": Decimal("0.123456789"),
                     "average_entry_price": Decimal("43210.5"), "opened_at": datetime.now(UTC)},
                )  # fmt: skip
            replication.replicate_once(stores)
            assert stores.get("replica").backend != backend
            assert_in_step(stores, "time_series", "users", "cache_entries", "portfolio_positions")
    finally:
        if server is not None:
            server.release(replica_url, lineages)


def test_a_key_deleted_and_inserted_again_replaces_the_old_row(stores: Stores) -> None:
    """Cache expiry deletes a row; the app inserts the same key again under a new id.
    The replica follows instead of failing on the unique key."""
    from cryptotrading.ops import scheduler

    app = stores.engine("app")
    with app.begin() as connection:
        connection.execute(
            insert(CacheEntry),
            [{"cache_key": "quote:BTC", "value": {"v": 1},
              "expires_at": datetime.now(UTC) - timedelta(seconds=1)},
             {"cache_key": "other", "value": {}, "expires_at": None}],  # key returns, new id
        )  # fmt: skip
    replication.replicate_once(stores)
    assert scheduler.expire_caches(stores)["cache_entries"] == 1
    put_cache(app, "quote:BTC", {"v": 2})
    replication.replicate_once(stores)
    assert_in_step(stores, "cache_entries")
    copied = table_rows(stores.engine("replica"), "cache_entries")
    assert sorted(row[1] for row in copied) == ["other", "quote:BTC"]
    assert next(row[0] for row in copied if row[1] == "quote:BTC") != 1


def test_follow_runs_passes_until_told_to_stop(stores: Stores) -> None:
    insert_candles(stores.engine("market"), 0, 9)
    seen: list[int] = []

    def on_cycle(runs: list[replication.TableRun]) -> None:
        seen.append(sum(r.rows for r in runs if r.table == "market.time_series"))
        insert_candles(stores.engine("market"), 100 + len(seen), 1)

    done = replication.follow(stores, interval=0.01, cycles=3, on_cycle=on_cycle)
    assert done == 3
    assert seen == [9, 1, 1]
