"""Retention: rows past their age go, in bounded batches; everything else stays."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select

from cryptotrading.models import (
    A2AMessage,
    CacheEntry,
    DataQualityMetric,
    ErrorLog,
    MonitoringEvent,
    SystemHealth,
    SystemMetric,
)
from cryptotrading.ops import retention, scheduler
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, count_rows, make_agent

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)
RECENT = NOW - timedelta(hours=1)


def _metric(name: str, at: datetime, component: str = "test") -> dict[str, Any]:
    return {"metric_name": name, "value": 1.0, "component": component, "recorded_at": at}


def _seed(engine: Engine) -> None:
    """Old and recent rows of every table with a retention rule."""
    make_agent(engine, "a")
    make_agent(engine, "b")
    ok = retention.JOB_OK_METRIC
    with engine.begin() as connection:
        connection.execute(
            insert(SystemMetric),
            [
                _metric("table_rows", OLD),
                _metric("table_rows", OLD),
                _metric("table_rows", RECENT),
                _metric(ok, OLD - timedelta(days=7), "job:backup-weekly"),
                _metric(ok, OLD, "job:backup-weekly"),  # newest of its job: kept
                _metric(ok, OLD, "job:health"),
                _metric(ok, RECENT, "job:health"),
            ],
        )
        health = {"component": "host", "status": "ok"}
        connection.execute(
            insert(SystemHealth),
            [{**health, "checked_at": OLD}, {**health, "checked_at": RECENT}],
        )
        event = {"event_type": "t", "severity": "info", "component": "c", "message": "m"}
        connection.execute(
            insert(MonitoringEvent),
            [{**event, "created_at": OLD}, {**event, "created_at": RECENT}],
        )
        error = {"error_type": "E", "message": "m", "component": "c"}
        connection.execute(
            insert(ErrorLog), [{**error, "created_at": OLD}, {**error, "created_at": RECENT}]
        )
        message = {
            "sender_id": "a", "receiver_id": "b", "message_type": "t", "payload": {},
            "created_at": OLD, "delivered_at": None, "processed_at": None,
        }  # fmt: skip
        connection.execute(
            insert(A2AMessage),
            [
                {**message, "message_id": "processed-old", "status": "processed",
                 "processed_at": OLD},
                {**message, "message_id": "processed-new", "status": "processed",
                 "processed_at": RECENT},
                {**message, "message_id": "pending-old", "status": "pending"},
                {**message, "message_id": "delivered-old", "status": "delivered",
                 "delivered_at": OLD},
            ],
        )  # fmt: skip
        quality = {
            "source": "binance",
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "quality_scores": {},
        }
        connection.execute(
            insert(DataQualityMetric),
            [{**quality, "measured_at": OLD}, {**quality, "measured_at": RECENT}],
        )
        connection.execute(
            insert(CacheEntry),
            [
                {"cache_key": "expired", "value": {}, "expires_at": NOW - timedelta(seconds=1)},
                {"cache_key": "live", "value": {}, "expires_at": NOW + timedelta(hours=1)},
                {"cache_key": "forever", "value": {}, "expires_at": None},
            ],
        )


def test_rows_past_retention_go_and_the_rest_stays(stores: Stores) -> None:
    engine = stores.engine(stores.app)
    _seed(engine)
    report = retention.apply_retention(stores, now=NOW)
    assert report.deleted == {
        "system_metrics": 4,  # two old table_rows, the older weekly ok, the old health ok
        "system_health": 1,
        "monitoring_events": 1,
        "error_logs": 1,
        "a2a_messages": 1,
        "a2a_processed_keys": 0,
        "data_quality_metrics": 1,
        "cache_entries": 1,
        "feature_cache": 0,
        "historical_data_cache": 0,
    }
    assert report.rows == 10
    with engine.connect() as connection:
        metrics = connection.execute(
            select(SystemMetric.metric_name, SystemMetric.component).order_by(SystemMetric.id)
        ).all()
        messages = set(connection.execute(select(A2AMessage.message_id)).scalars())
        keys = set(connection.execute(select(CacheEntry.cache_key)).scalars())
    assert metrics == [
        ("table_rows", "test"),
        (retention.JOB_OK_METRIC, "job:backup-weekly"),
        (retention.JOB_OK_METRIC, "job:health"),
    ]
    # only processed messages age out; pending and delivered ones wait for their agent
    assert messages == {"processed-new", "pending-old", "delivered-old"}
    assert keys == {"live", "forever"}
    for table in (SystemHealth, MonitoringEvent, ErrorLog, DataQualityMetric):
        assert count_rows(engine, table) == 1
    # the weekly job's last success survives: it is not due before its interval
    last = scheduler.last_runs(stores)
    assert last["backup-weekly"] == OLD and last["health"] == RECENT
    if engine.dialect.name == "postgresql":
        assert sorted(report.vacuumed) == sorted(t for t, n in report.deleted.items() if n)
    else:
        assert report.vacuumed == []
    again = retention.apply_retention(stores, now=NOW)
    assert again.rows == 0


@pytest.fixture
def small_batches(make_settings: SettingsFactory) -> Iterator[Stores]:
    with Stores(make_settings("three", retention_batch_rows=7)) as opened:
        yield opened


def test_deletes_in_bounded_transactions(small_batches: Stores) -> None:
    stores = small_batches
    engine = stores.engine(stores.app)
    with engine.begin() as connection:
        connection.execute(insert(SystemMetric), [_metric("m", OLD) for _ in range(50)])
        connection.execute(insert(SystemMetric), [_metric("m", RECENT) for _ in range(3)])
    per_statement: list[int] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            per_statement.append(int(_cursor.rowcount))

    event.listen(engine, "after_cursor_execute", count)
    try:
        report = retention.apply_retention(stores, now=NOW, only=["system_metrics"])
    finally:
        event.remove(engine, "after_cursor_execute", count)
    assert report.deleted == {"system_metrics": 50}
    assert report.batches == 8  # 7 x 7 rows, then one row (fewer than a batch: done)
    assert per_statement == [7] * 7 + [1]
    assert count_rows(engine, SystemMetric) == 3


def test_zero_days_keeps_rows_forever(make_settings: SettingsFactory) -> None:
    settings = make_settings("three", retention_metrics_days=0, retention_events_days=0)
    with Stores(settings) as stores:
        engine = stores.engine(stores.app)
        _seed(engine)
        report = retention.apply_retention(stores, now=NOW)
        assert "system_metrics" not in report.deleted
        assert "monitoring_events" not in report.deleted
        assert report.deleted["error_logs"] == 1
        assert count_rows(engine, SystemMetric) == 7
        assert count_rows(engine, MonitoringEvent) == 2
    assert retention.retention_days(settings)["system_metrics"] == 0


def test_retention_job_of_ops_run(stores: Stores) -> None:
    engine = stores.engine(stores.app)
    with engine.begin() as connection:
        connection.execute(insert(SystemMetric), [_metric("m", OLD) for _ in range(12)])
    [result] = scheduler.run_due(stores, only=["retention"])
    assert result.status == "ok", result
    assert result.detail["deleted"]["system_metrics"] == 12
    assert result.detail["rows"] == 12
    assert "cache_entries" not in result.detail["deleted"]  # the hourly cache-expiry job
    assert "purged_deleted" not in result.detail  # soft-deleted rows: kept by default
    assert "retention" in scheduler.last_runs(stores)
