"""Category 11 -- data quality and ingestion: quality metrics and ETL jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cryptotrading.common.clock import utcnow
from cryptotrading.models._common import Base, IdMixin, TimestampMixin, table_args

JOB_STATUSES = ("pending", "running", "completed", "failed", "cancelled")


class DataQualityMetric(IdMixin, Base):
    """Quality of one source's data for one symbol over a period."""

    __tablename__ = "data_quality_metrics"
    __table_args__ = table_args("2.0.0", Index(None, "source", "symbol", "measured_at"))

    source: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str | None] = mapped_column(String(8))
    quality_scores: Mapped[dict[str, Any]]
    completeness: Mapped[float | None]
    gaps_count: Mapped[int] = mapped_column(default=0)
    duplicates_rejected: Mapped[int] = mapped_column(default=0)
    outliers_count: Mapped[int] = mapped_column(default=0)
    staleness_seconds: Mapped[float | None]
    overall_score: Mapped[float | None]
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    measured_at: Mapped[datetime] = mapped_column(default=utcnow)


class DataIngestionJob(IdMixin, TimestampMixin, Base):
    """One ETL run (import, download) with its progress and outcome."""

    __tablename__ = "data_ingestion_jobs"
    __table_args__ = table_args(
        "2.0.0",
        Index(None, "status", "created_at"),
        CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed', 'cancelled')", name="status"
        ),
        CheckConstraint(
            "progress_percentage >= 0 AND progress_percentage <= 100", name="progress_range"
        ),
    )

    job_id: Mapped[str] = mapped_column(String(64), unique=True)
    job_type: Mapped[str] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(64))
    symbol: Mapped[str | None] = mapped_column(String(32))
    timeframe: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    progress_percentage: Mapped[float] = mapped_column(default=0.0)
    rows_processed: Mapped[int] = mapped_column(default=0)
    error_message: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
