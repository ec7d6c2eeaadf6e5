"""Retention: delete monitoring rows, processed messages and expired cache rows past
their age, in small transactions so writers are never blocked for long.

=========================  =============================  ===============================
table                      a row goes when                setting (days; 0 keeps forever)
=========================  =============================  ===============================
``system_metrics``         ``recorded_at`` is older       ``retention_metrics_days`` (30)
``system_health``          ``checked_at`` is older        ``retention_health_days`` (30)
``monitoring_events``      ``created_at`` is older        ``retention_events_days`` (90)
``error_logs``             ``created_at`` is older        ``retention_error_logs_days`` (90)
``a2a_messages``           processed, ``processed_at``    ``retention_messages_days`` (7)
                           older
``a2a_messages``           dead letter or expired, dead-  ``retention_dead_letters_days``
(dead letters)             lettered (else created) older  (0: kept until redriven)
``a2a_processed_keys``     ``processed_at`` is older      ``retention_processed_keys_days``
                                                          (7)
``data_quality_metrics``   ``measured_at`` is older       ``retention_quality_days`` (180)
the three cache tables      ``expires_at`` has passed      (always)
=========================  =============================  ===============================

The newest ``ops_job_ok`` metric of each job is always kept: it is how ``ops run``
knows when a job last succeeded. Each batch of at most ``retention_batch_rows`` rows
is one transaction (``DELETE ... WHERE id IN (SELECT id ... ORDER BY id LIMIT n)``).
On PostgreSQL the tables that lost rows are then vacuumed and analysed, so the space
is reused at once; on SQLite the ``reclaim`` job returns free pages to the file
system (:mod:`cryptotrading.ops.reclaim`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Engine, Table, delete, func, select

from cryptotrading.common.views import AsDict
from cryptotrading.db.session import translate_errors
from cryptotrading.models import (
    A2AMessage,
    A2AProcessedKey,
    CacheEntry,
    DataQualityMetric,
    ErrorLog,
    FeatureCache,
    HistoricalDataCache,
    MonitoringEvent,
    SystemHealth,
    SystemMetric,
)
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores

#: The metric ``ops run`` records for a successful job (its newest row per job is kept).
JOB_OK_METRIC = "ops_job_ok"

Condition = Callable[[datetime], ColumnElement[bool]]


@dataclass(frozen=True)
class Rule:
    """Which rows of *table* have outlived their retention."""

    table: Table
    setting: str | None  # Settings field holding the days; None: expiry, always applied
    condition: Callable[[datetime], ColumnElement[bool]]  # rows older than the cutoff
    label: str | None = None  # the report's name of the rule (default: the table's)

    @property
    def name(self) -> str:
        return self.label or self.table.name


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def _older(column: Any) -> Condition:
    return lambda cutoff: column < cutoff


def _processed_before(cutoff: datetime) -> ColumnElement[bool]:
    return (A2AMessage.status == "processed") & (A2AMessage.processed_at < cutoff)


def _dead_before(cutoff: datetime) -> ColumnElement[bool]:
    settled = func.coalesce(A2AMessage.dead_lettered_at, A2AMessage.created_at)
    return A2AMessage.status.in_(("dead", "expired")) & (settled < cutoff)


def _expired(column: Any) -> Condition:
    return lambda now: column.is_not(None) & (column <= now)


def _metrics_before(cutoff: datetime) -> ColumnElement[bool]:
    newest_ok = (
        select(func.max(SystemMetric.id))
        .where(SystemMetric.metric_name == JOB_OK_METRIC)
        .group_by(SystemMetric.component)
    )
    return (SystemMetric.recorded_at < cutoff) & SystemMetric.id.not_in(newest_ok)


RULES: tuple[Rule, ...] = (
    Rule(_table(SystemMetric), "retention_metrics_days", _metrics_before),
    Rule(_table(SystemHealth), "retention_health_days", _older(SystemHealth.checked_at)),
    Rule(_table(MonitoringEvent), "retention_events_days", _older(MonitoringEvent.created_at)),
    Rule(_table(ErrorLog), "retention_error_logs_days", _older(ErrorLog.created_at)),
    Rule(_table(A2AMessage), "retention_messages_days", _processed_before),
    Rule(
        _table(A2AMessage),
        "retention_dead_letters_days",
        _dead_before,
        label="a2a_messages (dead letters)",
    ),
    Rule(
        _table(A2AProcessedKey),
        "retention_processed_keys_days",
        _older(A2AProcessedKey.processed_at),
    ),
    Rule(
        _table(DataQualityMetric),
        "retention_quality_days",
        _older(DataQualityMetric.measured_at),
    ),
)

#: Rows whose ``expires_at`` has passed: deleted at every run, whatever the settings.
EXPIRY_RULES: tuple[Rule, ...] = tuple(
    Rule(_table(model), None, _expired(model.expires_at))
    for model in (CacheEntry, FeatureCache, HistoricalDataCache)
)


@dataclass
class RetentionReport(AsDict):
    """What one retention run deleted (rows per table), the cutoff of each table,
    and the tables vacuumed afterwards (PostgreSQL)."""

    deleted: dict[str, int] = field(default_factory=dict)
    cutoffs: dict[str, str] = field(default_factory=dict)
    batches: int = 0
    vacuumed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.deleted.values())


def delete_in_batches(
    engine: Engine, table: Table, condition: ColumnElement[bool], batch_rows: int
) -> tuple[int, int]:
    """Delete the rows of *table* matching *condition*, at most *batch_rows* per
    transaction, oldest ids first; returns (rows, transactions)."""
    key = table.c.id
    total = batches = 0
    while True:
        chosen = select(key).where(condition).order_by(key).limit(batch_rows).scalar_subquery()
        with engine.begin() as connection:
            deleted = int(connection.execute(delete(table).where(key.in_(chosen))).rowcount or 0)
        batches += 1
        total += deleted
        if deleted < batch_rows:
            return total, batches
        time.sleep(0)  # let a waiting writer take the lock between batches


def vacuum_tables(engine: Engine, tables: list[str]) -> None:
    """PostgreSQL ``VACUUM (ANALYZE)`` of *tables* (outside any transaction)."""
    if not tables:
        return
    names = ", ".join(f'"{name}"' for name in tables)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"VACUUM (ANALYZE) {names}")


def retention_days(settings: Settings) -> dict[str, float]:
    """The retention in days of each table with a setting (0: kept forever)."""
    return {
        rule.name: float(getattr(settings, rule.setting))
        for rule in RULES
        if rule.setting is not None
    }


def apply_retention(
    stores: Stores,
    *,
    now: datetime | None = None,
    only: list[str] | None = None,
    expiry: bool = True,
) -> RetentionReport:
    """Delete every row past its table's retention (and, with *expiry*, every expired
    cache row); *only* limits the run to those tables. On PostgreSQL the tables that
    lost rows are vacuumed and analysed afterwards."""
    settings = stores.settings
    now = now or datetime.now(UTC)
    report = RetentionReport()
    started = time.perf_counter()
    engine = stores.engine(stores.app)
    rules = [*RULES, *(EXPIRY_RULES if expiry else ())]
    with translate_errors(stores.app.name):
        for rule in rules:
            if only is not None and rule.table.name not in only and rule.name not in only:
                continue
            if rule.setting is None:
                cutoff = now
            else:
                days = float(getattr(settings, rule.setting))
                if days <= 0:
                    continue
                cutoff = now - timedelta(days=days)
            rows, batches = delete_in_batches(
                engine, rule.table, rule.condition(cutoff), settings.retention_batch_rows
            )
            report.deleted[rule.name] = rows
            report.cutoffs[rule.name] = cutoff.isoformat()
            report.batches += batches
        if engine.dialect.name == "postgresql":
            names = {rule.name: rule.table.name for rule in rules}
            report.vacuumed = sorted({names[name] for name, rows in report.deleted.items() if rows})
            vacuum_tables(engine, report.vacuumed)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def expire_caches(stores: Stores, now: datetime | None = None) -> dict[str, int]:
    """Delete expired rows of ``cache_entries``, ``feature_cache`` and
    ``historical_data_cache`` (in batches); rows deleted per table."""
    now = now or datetime.now(UTC)
    engine = stores.engine(stores.app)
    deleted = {}
    with translate_errors(stores.app.name):
        for rule in EXPIRY_RULES:
            rows, _ = delete_in_batches(
                engine, rule.table, rule.condition(now), stores.settings.retention_batch_rows
            )
            deleted[rule.table.name] = rows
    return deleted
