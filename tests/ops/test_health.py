"""Health: sizes, rows, partitions, growth, thresholds, events, slow queries, error logs."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from cryptotrading.db import timing
from cryptotrading.models import (
    DataQualityMetric,
    ErrorLog,
    MonitoringEvent,
    SystemHealth,
    SystemMetric,
)
from cryptotrading.ops import health, monitoring
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, count_rows, invoke, run_cli
from tests.ops.helpers import BASE_TS, drop_pg, insert_candles, insert_metrics

JAN_2021 = BASE_TS
FEB_2021 = 1_612_137_600_000


def _store(report: health.HealthReport, name: str) -> health.StoreHealth:
    return next(s for s in report.stores if s.name == name)


def test_report_has_sizes_rows_and_monthly_partitions(stores: Stores) -> None:
    market = stores.engine("market")
    if stores.market.backend == "postgresql":
        with market.begin() as connection:
            connection.exec_driver_sql(
                "CREATE TABLE time_series_p202101 PARTITION OF time_series "
                f"FOR VALUES FROM ({JAN_2021}) TO ({FEB_2021})"
            )
    insert_candles(market, 0, 24 * 31 + 10)  # January 2021 and 10 hours of February
    report = health.check(stores, health.Thresholds(min_free_disk_percent=None))
    assert report.ok, report.alerts
    store = _store(report, "market")
    assert store.status == "ok" and store.size_bytes and store.size_bytes > 0
    series = next(t for t in store.tables if t.name == "time_series")
    assert series.rows == 24 * 31 + 10
    assert series.bytes and series.bytes > 0
    if stores.market.backend == "postgresql":
        partitions = {p.name: p for p in store.partitions}
        assert partitions["time_series_p202101"].rows == 24 * 31
        assert partitions["time_series_default"].rows == 10
        assert (
            "FROM ('1609459200000') TO ('1612137600000')"
            in partitions["time_series_p202101"].bounds
        )
        assert partitions["time_series_p202101"].bytes > 0
    else:
        assert store.partitions == []
    assert report.host.disk_free_bytes > 0 and 0 <= report.host.memory_percent <= 100


def test_record_keeps_snapshots_and_growth_is_per_day(stores: Stores) -> None:
    app = stores.engine("app")
    insert_metrics(app, 10, "seed")
    written = health.record(stores, health.check(stores))
    assert written > 0
    with app.connect() as connection:
        recorded = connection.execute(
            select(SystemMetric.value).where(
                SystemMetric.metric_name == health.ROWS_METRIC,
                SystemMetric.component == "store:market",
            )
        ).all()
        assert recorded  # one per market table
        components = set(connection.execute(select(SystemHealth.component)).scalars())
    assert components == {"store:app", "store:market", "store:replica", "host"}
    # Pretend the snapshot was taken a day ago; 48 candles arrived since.
    with app.begin() as connection:
        connection.execute(
            update(SystemMetric).values(recorded_at=datetime.now(UTC) - timedelta(days=1))
        )
    insert_candles(stores.engine("market"), 0, 48)
    report = health.check(stores)
    series = next(t for t in _store(report, "market").tables if t.name == "time_series")
    assert series.growth_rows_per_day == pytest.approx(48, rel=0.01)
    assert _store(report, "market").growth_bytes_per_day is not None


def test_thresholds_raise_alerts_events_and_exit_code(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    result = invoke(settings, "health", "--json", "--record", "--min-free-disk", "100")
    assert result.exit_code == 1, result.stderr
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    assert [a["event_type"] for a in payload["alerts"]] == ["disk_space", "replication"]
    assert payload["alerts"][1]["severity"] == "info"  # never replicated: no failure
    with Stores(settings) as stores:
        with stores.engine("app").connect() as connection:
            events = connection.execute(
                select(
                    MonitoringEvent.event_type, MonitoringEvent.severity, MonitoringEvent.component
                )
            ).all()
        assert [(e[0], e[2]) for e in events] == [
            ("disk_space", "host:disk"),
            ("replication", "store:replica"),
        ]
        assert events[0][1] in ("warning", "critical")
    healthy = invoke(settings, "health", "--json", "--min-free-disk", "0")
    assert healthy.exit_code == 0, healthy.stdout
    assert json.loads(healthy.stdout)["recorded_rows"] is None


def test_data_quality_rows_become_alerts(stores: Stores) -> None:
    with stores.engine("app").begin() as connection:
        connection.execute(
            insert(DataQualityMetric),
            [
                {"source": "binance", "symbol": "BTC/USDT", "timeframe": "1h",
                 "quality_scores": {"completeness": 0.5}, "overall_score": 0.5, "gaps_count": 3},
                {"source": "binance", "symbol": "ETH/USDT", "timeframe": "1h",
                 "quality_scores": {}, "overall_score": 0.99, "gaps_count": 0},
            ],
        )  # fmt: skip
    report = health.check(stores, health.Thresholds(min_free_disk_percent=None))
    assert not report.ok
    quality = [a for a in report.alerts if a.event_type == "data_quality"]
    assert len(quality) == 1
    assert "BTC/USDT" in quality[0].message and "3 gaps" in quality[0].message
    assert len(report.quality) == 2


def test_unreachable_store_is_reported_down(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    with Stores(settings) as stores:
        if stores.get("replica").path is not None:
            stores.get("replica").path.unlink()  # type: ignore[union-attr]
        else:
            drop_pg(stores.get("replica").url, str(stores.engine("replica").url.database))
            stores.close()
        report = health.check(stores, health.Thresholds(min_free_disk_percent=None))
    replica = _store(report, "replica")
    assert replica.status == "down" and replica.error
    assert any(a.event_type == "store_down" and a.severity == "critical" for a in report.alerts)
    assert not report.ok


def test_slow_queries_are_captured_stored_and_reported(make_settings: SettingsFactory) -> None:
    timing.take_slow_queries()
    with Stores(make_settings(slow_query_ms=0)) as stores:
        count_rows(stores.engine("market"), "time_series")
        captured = timing.buffered_slow_queries()
        assert any("count" in q.statement.lower() and q.store == "market" for q in captured)
        health.record(stores, health.check(stores))
        assert timing.buffered_slow_queries() == [] or all(
            q.at > captured[-1].at for q in timing.buffered_slow_queries()
        )
        with stores.engine("app").connect() as connection:
            stored = connection.execute(
                select(func.count()).where(SystemMetric.metric_name == timing.SLOW_QUERY_METRIC)
            ).scalar_one()
        assert stored >= len(captured)
        report = health.check(
            stores, health.Thresholds(min_free_disk_percent=None, max_slow_queries=None)
        )
        assert any(q["store"] == "market" for q in report.slow_queries)
    timing.take_slow_queries()


def test_slow_query_rows_fit_the_model() -> None:
    """db/timing.py writes system_metrics through a Core table below the models layer:
    every column it names exists in the model with the same type."""
    model = SystemMetric.__table__
    for written in timing.SYSTEM_METRICS.columns:
        assert written.name in model.columns, written.name
        assert type(written.type) is type(model.columns[written.name].type), written.name
    required = {c.name for c in model.columns if not c.nullable and c.default is None}
    assert required - {"id"} <= set(timing.SYSTEM_METRICS.columns.keys())


def test_real_slow_statement_over_threshold(make_settings: SettingsFactory) -> None:
    timing.take_slow_queries()
    with Stores(make_settings(slow_query_ms=50)) as stores:
        engine = stores.engine("app")
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1").all()
            slow = (
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) "
                "SELECT count(*) FROM n"
            )
            connection.exec_driver_sql(slow).all()
        statements = [q.statement for q in timing.take_slow_queries()]
    assert any("RECURSIVE" in s for s in statements)
    assert not any(s == "SELECT 1" for s in statements)


def test_slow_queries_of_any_command_are_stored_at_exit(make_settings: SettingsFactory) -> None:
    settings = make_settings(slow_query_ms=0)
    result = run_cli(
        settings, "db", "info", "--json", extra_env={"CRYPTOTRADING_SLOW_QUERY_MS": "0"}
    )
    assert result.returncode == 0, result.stderr
    with Stores(settings) as stores:
        timing.take_slow_queries()
        with stores.engine("app").connect() as connection:
            rows = (
                connection.execute(
                    select(SystemMetric.tags).where(
                        SystemMetric.metric_name == timing.SLOW_QUERY_METRIC
                    )
                )
                .scalars()
                .all()
            )
        timing.take_slow_queries()
    assert any("count(*)" in (tags or {}).get("statement", "") for tags in rows)


def test_error_log_handler_writes_stack_traces(stores: Stores) -> None:
    engine = stores.engine("app")
    logger = logging.getLogger("cryptotrading.tests.ops")
    handler = monitoring.install_error_logging(engine, logger)
    try:
        assert monitoring.install_error_logging(engine, logger) is handler  # idempotent
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.exception("dividing went wrong")
        logger.warning("only a warning")  # below ERROR: not stored
        logger.error("plain error without exception")
    finally:
        logger.removeHandler(handler)
    with Session(engine) as session:
        rows = session.execute(select(ErrorLog).order_by(ErrorLog.id)).scalars().all()
    assert [r.error_type for r in rows] == ["ZeroDivisionError", "ERROR"]
    assert "1 / 0" in (rows[0].stack_trace or "") and "Traceback" in (rows[0].stack_trace or "")
    assert rows[0].message == "dividing went wrong"
    assert rows[0].component == "cryptotrading.tests.ops"
    assert (
        rows[0].context
        and rows[0].context["function"] == "test_error_log_handler_writes_stack_traces"
    )
    assert "test_health.py" in (rows[1].stack_trace or "")


def test_replication_age_is_reported_and_alerted(stores: Stores) -> None:
    from cryptotrading.ops import replication

    limits = health.Thresholds(min_free_disk_percent=None)
    report = health.check(stores, limits)
    assert report.replication == {"replica": "replica", "last_pass": None, "age_seconds": None}
    assert [a.severity for a in report.alerts if a.event_type == "replication"] == ["info"]
    assert report.ok  # never replicated is information, not a failure

    replication.replicate_once(stores)
    report = health.check(stores, limits)
    assert report.replication is not None and report.replication["age_seconds"] < 60
    assert not [a for a in report.alerts if a.event_type == "replication"]

    two_hours_ago = int((datetime.now(UTC) - timedelta(hours=2)).timestamp() * 1000)
    with stores.engine("replica").begin() as connection:
        connection.exec_driver_sql(f"UPDATE replication_cursors SET updated_at = {two_hours_ago}")
    report = health.check(stores, limits)
    assert [a.severity for a in report.alerts if a.event_type == "replication"] == ["warning"]
    assert not report.ok
