"""``cryptotrading health``: sizes, row counts, growth, slow queries, disk, host and
data-quality alerts -- and, with ``record``, snapshots kept for growth rates.

With a replica, the report also runs the cheap replica check
(:func:`cryptotrading.ops.replica_verify.quick_check`: row counts and the digests of the
newest keys and of one random chunk per table) and reads the replication lag
(:func:`replication_lag`); drift and lag over the threshold become alerts.

A report is read-only. :func:`record` writes, in ONE transaction on the app store:
``system_metrics`` rows (store and table sizes and row counts, the buffered slow
queries), ``system_health`` rows (each store and the host) and a
``monitoring_events`` row per alert. Growth rates compare the current figures with
the oldest snapshot recorded within the growth window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from cryptotrading import agents
from cryptotrading.common.views import AsDict
from cryptotrading.db import timing
from cryptotrading.db.engine import READ_ONLY
from cryptotrading.db.session import translate_errors
from cryptotrading.errors import CryptotradingError
from cryptotrading.market.archive import partition_files
from cryptotrading.models import (
    DataQualityMetric,
    MonitoringEvent,
    SystemHealth,
    SystemMetric,
)
from cryptotrading.ops import replica_verify, replication
from cryptotrading.ops.health_readings import (
    HostHealth,
    StoreHealth,
    host_health,
    store_health,
)
from cryptotrading.stores import Stores

ROWS_METRIC = "table_rows"
BYTES_METRIC = "table_bytes"
STORE_METRIC = "store_size_bytes"
MIN_GROWTH_SECONDS = 60.0
SEVERITY_ORDER = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True)
class Thresholds:
    """Limits that turn readings into alerts (``None`` switches a check off)."""

    min_free_disk_percent: float | None = 10.0
    max_memory_percent: float | None = 95.0
    max_cpu_percent: float | None = None
    max_store_bytes: int | None = None
    max_slow_queries: int | None = 50
    #: Alert when the last replication pass ended longer ago than this.
    max_replication_age_seconds: float | None = 3600.0
    #: Alert when a change has waited longer than this to reach the replica.
    max_replication_lag_seconds: float | None = 300.0
    #: Rows per table the cheap replica check compares (None: no replica check).
    replica_check_rows: int | None = replica_verify.DEFAULT_QUICK_ROWS
    min_quality_score: float | None = 0.8
    #: Alert when the agent queue holds more dead letters than this.
    max_dead_letters: int | None = 0
    growth_window_days: float = 7.0
    slow_query_window_hours: float = 24.0
    quality_window_days: float = 7.0


@dataclass
class Alert(AsDict):
    severity: str
    component: str
    event_type: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthReport:
    checked_at: datetime
    host: HostHealth
    stores: list[StoreHealth]
    slow_queries: list[dict[str, Any]]
    quality: list[dict[str, Any]]
    alerts: list[Alert]
    replication: dict[str, Any] | None = None
    archive: dict[str, Any] | None = None
    replica_check: dict[str, Any] | None = None
    agents: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """False when any alert is a warning or worse."""
        return not any(SEVERITY_ORDER.index(a.severity) >= 2 for a in self.alerts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked_at": self.checked_at.isoformat(),
            "host": self.host.as_dict(),
            "stores": [s.as_dict() for s in self.stores],
            "slow_queries": self.slow_queries,
            "data_quality": self.quality,
            "replication": self.replication,
            "replica_check": self.replica_check,
            "archive": self.archive,
            "agents": self.agents,
            "alerts": [a.as_dict() for a in self.alerts],
        }


def _oldest_snapshots(
    connection: Connection, metric: str, since: datetime
) -> dict[tuple[str, str], tuple[float, datetime]]:
    """(store, table) -> (value, time) of the oldest snapshot of *metric* since *since*."""
    rows = connection.execute(
        select(
            SystemMetric.component, SystemMetric.tags, SystemMetric.value, SystemMetric.recorded_at
        )
        .where(SystemMetric.metric_name == metric, SystemMetric.recorded_at >= since)
        .order_by(SystemMetric.recorded_at.desc())
    ).all()
    oldest: dict[tuple[str, str], tuple[float, datetime]] = {}
    for component, tags, value, recorded_at in rows:
        key = (str(component), str((tags or {}).get("table", "")))
        oldest[key] = (float(value), recorded_at)  # descending: the last one wins
    return oldest


def _per_day(now_value: float, then: tuple[float, datetime] | None, now: datetime) -> float | None:
    if then is None:
        return None
    seconds = (now - then[1]).total_seconds()
    if seconds < MIN_GROWTH_SECONDS:  # too short a span to extrapolate to a day
        return None
    return round((now_value - then[0]) * 86_400 / seconds, 3)


def _growth(app: Connection, report: list[StoreHealth], now: datetime, window: float) -> None:
    since = now - timedelta(days=window)
    tables = _oldest_snapshots(app, ROWS_METRIC, since)
    stores = _oldest_snapshots(app, STORE_METRIC, since)
    for store in report:
        component = f"store:{store.name}"
        if store.size_bytes is not None:
            store.growth_bytes_per_day = _per_day(
                store.size_bytes, stores.get((component, "")), now
            )
        for table in store.tables:
            table.growth_rows_per_day = _per_day(
                table.rows, tables.get((component, table.name)), now
            )


def _slow_queries(app: Connection, since: datetime, app_url: str) -> list[dict[str, Any]]:
    stored = app.execute(
        select(
            SystemMetric.component, SystemMetric.value, SystemMetric.tags, SystemMetric.recorded_at
        )
        .where(
            SystemMetric.metric_name == timing.SLOW_QUERY_METRIC,
            SystemMetric.recorded_at >= since,
        )
        .order_by(SystemMetric.value.desc())
        .limit(100)
    ).all()
    found = [
        {
            "store": str(component).removeprefix("store:"),
            "milliseconds": float(value),
            "statement": (tags or {}).get("statement", ""),
            "at": recorded_at.isoformat(),
        }
        for component, value, tags, recorded_at in stored
    ]
    found += [q.as_dict() for q in timing.buffered_slow_queries() if q.app_url == app_url]
    return sorted(found, key=lambda q: -float(q["milliseconds"]))


def _quality(app: Connection, since: datetime) -> list[dict[str, Any]]:
    """The latest data-quality measurement of every (source, symbol, timeframe)."""
    table = DataQualityMetric.__table__
    rows = app.execute(
        select(table).where(table.c.measured_at >= since).order_by(table.c.measured_at.desc())
    ).mappings()
    fields = (
        "source", "symbol", "timeframe", "overall_score", "completeness", "gaps_count",
        "outliers_count", "duplicates_rejected", "staleness_seconds",
    )  # fmt: skip
    latest: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for row in rows:
        key = (row["source"], row["symbol"], row["timeframe"])
        if key not in latest:
            latest[key] = {name: row[name] for name in fields}
            latest[key]["measured_at"] = row["measured_at"].isoformat()
    return list(latest.values())


def _replication(stores: Stores, report: list[StoreHealth], now: datetime) -> dict[str, Any] | None:
    """When the replica last completed a pass (layouts with a replica only)."""
    replica = next((store for store in stores if store.is_replica), None)
    if replica is None or any(s.name == replica.name and s.status == "down" for s in report):
        return None
    with translate_errors(replica.name), stores.engine(replica).connect() as connection:
        last = replication.last_pass(connection.execution_options(**{READ_ONLY: True}))
    return {
        "replica": replica.name,
        "last_pass": last.isoformat() if last else None,
        "age_seconds": round((now - last).total_seconds(), 3) if last else None,
    }


def replication_lag(stores: Stores) -> dict[str, tuple[int | None, float | None]]:
    """Per replicated table, from :func:`cryptotrading.ops.replication.status`: the
    changes the replica has not applied yet (None: replicated logically) and the age in
    seconds of the oldest. A table with pending changes is lagging, not drifted; lag
    over ``max_replication_lag_seconds`` alerts."""
    return {
        lag.table: (lag.pending_changes, lag.oldest_pending_seconds)
        for lag in replication.status(stores)
    }


def _replica_check(
    stores: Stores, state: dict[str, Any] | None, rows: int | None
) -> dict[str, Any] | None:
    """The cheap replica check, when there is a replica that was replicated at least once.

    A table that differs but has changes waiting is lagging, not drifted; a table that
    differs without any is checked once more (its changes may have been applied between
    the check and the status) before it counts as drifted.
    """
    if rows is None or state is None or state["last_pass"] is None:
        return None
    result: dict[str, Any] = {"replica": state["replica"], "error": None}
    try:
        quick = replica_verify.quick_check(stores, rows=rows)
        lags = replication_lag(stores)
        suspects = [t.table for t in quick.differing if not lags.get(t.table, (0, None))[0]]
        drifted = (
            replica_verify.quick_check(stores, suspects, rows=rows).differing if suspects else []
        )
    except CryptotradingError as exc:
        result["error"] = f"{exc.message} ({exc.hint})"
        return result
    result.update(
        tables=len(quick.tables),
        sampled_rows=sum(t.sampled_rows for t in quick.tables),
        drifted=[t.as_dict() for t in drifted],
        pending={name: count for name, (count, _age) in lags.items() if count},
        lag_seconds={name: age for name, (count, age) in lags.items() if count and age is not None},
        seconds=quick.seconds,
    )
    return result


def _replica_alerts(check: dict[str, Any], limits: Thresholds) -> list[Alert]:
    component = f"store:{check['replica']}"
    if check["error"] is not None:
        message = f"cannot compare the replica with its sources: {check['error']}"
        return [Alert("warning", component, "replica_check", message)]
    alerts = []
    if check["drifted"]:
        names = ", ".join(
            f"{t['table']} ({t['source_rows']} vs {t['replica_rows']} rows, "
            f"{len(t['ranges'])} differing ranges)"
            for t in check["drifted"]
        )
        alerts.append(
            Alert("warning", component, "replica_drift",
                  f"the replica differs from its source without pending changes: {names}; "
                  "run `cryptotrading replicate verify`, repair with `replicate resync TABLE`",
                  {"tables": check["drifted"]})
        )  # fmt: skip
    limit = limits.max_replication_lag_seconds
    late = {t: age for t, age in check["lag_seconds"].items() if limit is not None and age > limit}
    if late:
        worst = max(late.values())
        alerts.append(
            Alert("warning", component, "replication_lag",
                  f"changes of {len(late)} tables have waited up to {worst:.0f} s for the "
                  f"replica (threshold {limit:g} s): {', '.join(sorted(late))}",
                  {"lag_seconds": late, "pending": check["pending"]})
        )  # fmt: skip
    return alerts


# -- alerts ---------------------------------------------------------------------------


def _alerts(report: HealthReport, limits: Thresholds) -> list[Alert]:
    alerts = []
    host = report.host
    if (
        limits.min_free_disk_percent is not None
        and host.disk_free_percent < limits.min_free_disk_percent
    ):
        alerts.append(
            Alert(
                "critical"
                if host.disk_free_percent < limits.min_free_disk_percent / 2
                else "warning",
                "host:disk",
                "disk_space",
                f"{host.disk_free_percent:.1f}% free on {host.disk_path} "
                f"(threshold {limits.min_free_disk_percent}%)",
                {"free_bytes": host.disk_free_bytes},
            )
        )
    if limits.max_memory_percent is not None and host.memory_percent > limits.max_memory_percent:
        alerts.append(
            Alert(
                "warning",
                "host:memory",
                "memory",
                f"memory {host.memory_percent:.1f}% used (threshold {limits.max_memory_percent}%)",
            )
        )
    if limits.max_cpu_percent is not None and host.cpu_percent > limits.max_cpu_percent:
        alerts.append(
            Alert(
                "warning",
                "host:cpu",
                "cpu",
                f"CPU {host.cpu_percent:.1f}% busy (threshold {limits.max_cpu_percent}%)",
            )
        )
    for store in report.stores:
        component = f"store:{store.name}"
        if store.status != "ok":
            alerts.append(
                Alert(
                    "critical",
                    component,
                    "store_down",
                    f"store {store.name} is unreachable: {store.error}",
                )
            )
        elif (
            limits.max_store_bytes is not None
            and store.size_bytes is not None
            and store.size_bytes > limits.max_store_bytes
        ):
            alerts.append(
                Alert(
                    "warning",
                    component,
                    "store_size",
                    f"store {store.name} is {store.size_bytes} bytes "
                    f"(threshold {limits.max_store_bytes})",
                )
            )
    dead = (report.agents or {}).get("dead_letters", 0)
    if limits.max_dead_letters is not None and dead > limits.max_dead_letters:
        alerts.append(
            Alert(
                "warning",
                "agents:queue",
                "dead_letters",
                f"{dead} dead letter(s) in the agent queue (threshold {limits.max_dead_letters}); "
                "inspect with `cryptotrading agents dead-letters list`, then redrive or purge",
                {"dead_letters": dead},
            )
        )
    if limits.max_slow_queries is not None and len(report.slow_queries) > limits.max_slow_queries:
        alerts.append(
            Alert(
                "warning",
                "queries",
                "slow_queries",
                f"{len(report.slow_queries)} slow queries in the last "
                f"{limits.slow_query_window_hours:g} h "
                f"(threshold {limits.max_slow_queries})",
            )
        )
    state = report.replication
    if state is not None and limits.max_replication_age_seconds is not None:
        age = state["age_seconds"]
        if age is None:
            alerts.append(
                Alert("info", f"store:{state['replica']}", "replication",
                      "the replica has never been replicated (run `cryptotrading replicate`)")
            )  # fmt: skip
        elif age > limits.max_replication_age_seconds:
            alerts.append(
                Alert("warning", f"store:{state['replica']}", "replication",
                      f"the last replication pass ended {age:.0f} s ago "
                      f"(threshold {limits.max_replication_age_seconds:g} s)")
            )  # fmt: skip
    if report.replica_check is not None:
        alerts += _replica_alerts(report.replica_check, limits)
    for item in report.quality:
        problems = []
        score = item["overall_score"]
        if (
            limits.min_quality_score is not None
            and score is not None
            and score < limits.min_quality_score
        ):
            problems.append(f"score {score:.2f} < {limits.min_quality_score}")
        if item["gaps_count"]:
            problems.append(f"{item['gaps_count']} gaps")
        if item["outliers_count"]:
            problems.append(f"{item['outliers_count']} outliers")
        if problems:
            name = f"{item['source']} {item['symbol']} {item['timeframe'] or ''}".strip()
            alerts.append(
                Alert(
                    "warning",
                    f"data_quality:{item['source']}",
                    "data_quality",
                    f"data quality of {name}: {', '.join(problems)}",
                    item,
                )
            )
    return alerts


def _archive(archive_dir: Path) -> dict[str, Any] | None:
    """Size and span of the candle archive (file sizes only; `db check` verifies it)."""
    files = list(partition_files(archive_dir))
    if not files:
        return None
    months = sorted(partition.month for partition, _ in files)
    return {
        "dir": str(archive_dir),
        "partitions": len(files),
        "bytes": sum(path.stat().st_size for _, path in files),
        "first_month": months[0],
        "last_month": months[-1],
    }


def check(stores: Stores, limits: Thresholds | None = None) -> HealthReport:
    """Read every figure and derive the alerts; writes nothing."""
    limits = limits or Thresholds()
    now = datetime.now(UTC)
    store_reports = [store_health(stores, store) for store in stores]
    slow: list[dict[str, Any]] = []
    quality: list[dict[str, Any]] = []
    app = next((s for s in store_reports if s.name == stores.app.name), None)
    if app is not None and app.status == "ok":
        with translate_errors(stores.app.name), stores.engine(stores.app).connect() as connection:
            connection = connection.execution_options(**{READ_ONLY: True})
            _growth(connection, store_reports, now, limits.growth_window_days)
            slow = _slow_queries(
                connection, now - timedelta(hours=limits.slow_query_window_hours), stores.app.url
            )
            quality = _quality(connection, now - timedelta(days=limits.quality_window_days))
        queue = agents.queue_stats(stores.engine(stores.app)).as_dict()
    report = HealthReport(
        now, host_health(stores.settings.data_dir), store_reports, slow, quality, []
    )
    report.agents = queue if app is not None and app.status == "ok" else None
    report.replication = _replication(stores, store_reports, now)
    report.replica_check = _replica_check(stores, report.replication, limits.replica_check_rows)
    report.archive = _archive(stores.settings.data_dir / "archive")
    report.alerts = _alerts(report, limits)
    for store in store_reports:
        if store.status == "ok" and any(
            a.component == f"store:{store.name}" for a in report.alerts
        ):
            store.status = "warning"
    return report


def record(stores: Stores, report: HealthReport) -> int:
    """Store the snapshot, the slow queries and the alerts in ONE app-store transaction;
    returns the number of rows written."""
    metrics: list[dict[str, Any]] = []
    health: list[dict[str, Any]] = []
    for store in report.stores:
        component = f"store:{store.name}"
        health.append(
            {
                "component": component,
                "status": store.status,
                "cpu_usage": None,
                "memory_usage": None,
                "disk_usage": None,
                "response_time_ms": store.response_ms,
                "details": {
                    "size_bytes": store.size_bytes,
                    "error": store.error,
                    "partitions": len(store.partitions),
                },
                "checked_at": report.checked_at,
            }
        )
        if store.status == "down":
            continue
        if store.size_bytes is not None:
            metrics.append(
                {
                    "metric_name": STORE_METRIC,
                    "value": float(store.size_bytes),
                    "unit": "bytes",
                    "component": component,
                    "tags": {},
                    "recorded_at": report.checked_at,
                }
            )
        for table in store.tables:
            metrics.append(
                {
                    "metric_name": ROWS_METRIC,
                    "value": float(table.rows),
                    "unit": "rows",
                    "component": component,
                    "tags": {"table": table.name},
                    "recorded_at": report.checked_at,
                }
            )
            if table.bytes is not None:
                metrics.append(
                    {
                        "metric_name": BYTES_METRIC,
                        "value": float(table.bytes),
                        "unit": "bytes",
                        "component": component,
                        "tags": {"table": table.name},
                        "recorded_at": report.checked_at,
                    }
                )
    host = report.host
    health.append(
        {
            "component": "host",
            "status": "ok" if report.ok else "warning",
            "cpu_usage": host.cpu_percent,
            "memory_usage": host.memory_percent,
            "disk_usage": round(100.0 - host.disk_free_percent, 2),
            "response_time_ms": None,
            "details": host.as_dict(),
            "checked_at": report.checked_at,
        }
    )
    events = [
        {
            "event_type": a.event_type,
            "severity": a.severity,
            "component": a.component,
            "message": a.message,
            "details": a.details,
        }
        for a in report.alerts
    ]
    engine: Engine = stores.engine(stores.app)
    slow = timing.take_slow_queries(stores.app.url)
    try:
        with translate_errors(stores.app.name), engine.begin() as connection:
            slow_rows = [q.metric_row() for q in slow]
            for rows, model in (
                (metrics + slow_rows, SystemMetric),
                (health, SystemHealth),
                (events, MonitoringEvent),
            ):
                if rows:
                    connection.execute(insert(model), rows)
    except BaseException:
        for query in slow:
            timing.record_slow_query(query)
        raise
    return len(metrics) + len(slow) + len(health) + len(events)
