"""Category 7 -- system monitoring: health, metrics, events and error logs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cryptotrading.common.clock import utcnow
from cryptotrading.models._common import Base, CreatedAtMixin, IdMixin, table_args

SEVERITIES = ("debug", "info", "warning", "error", "critical")
_SEVERITY_CHECK = "severity IN ('debug', 'info', 'warning', 'error', 'critical')"


class SystemHealth(IdMixin, Base):
    """A health reading of one component (store, host, service)."""

    __tablename__ = "system_health"
    __table_args__ = table_args("2.0.0", Index(None, "component", "checked_at"))

    component: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    cpu_usage: Mapped[float | None]
    memory_usage: Mapped[float | None]
    disk_usage: Mapped[float | None]
    response_time_ms: Mapped[float | None]
    details: Mapped[dict[str, Any] | None]
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)


class SystemMetric(IdMixin, Base):
    """A named numeric measurement (table size, row count, latency...)."""

    __tablename__ = "system_metrics"
    __table_args__ = table_args(
        "2.0.0", Index(None, "metric_name", "recorded_at"), Index(None, "component", "recorded_at")
    )

    metric_name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float]
    unit: Mapped[str | None] = mapped_column(String(32))
    component: Mapped[str | None] = mapped_column(String(128))
    tags: Mapped[dict[str, Any] | None]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class MonitoringEvent(IdMixin, CreatedAtMixin, Base):
    """An alert or notable event."""

    __tablename__ = "monitoring_events"
    __table_args__ = table_args(
        "2.0.0",
        Index(None, "severity", "created_at"),
        Index(None, "component", "created_at"),
        CheckConstraint(_SEVERITY_CHECK, name="severity"),
    )

    event_type: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    component: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None]
    acknowledged: Mapped[bool] = mapped_column(default=False)
    resolved_at: Mapped[datetime | None]


class ErrorLog(IdMixin, CreatedAtMixin, Base):
    """An error with its stack trace."""

    __tablename__ = "error_logs"
    __table_args__ = table_args("2.0.0", Index(None, "component", "created_at"))

    error_type: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    stack_trace: Mapped[str | None] = mapped_column(Text)
    component: Mapped[str] = mapped_column(String(128))
    context: Mapped[dict[str, Any] | None]
