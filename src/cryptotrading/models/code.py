"""Category 9 -- code management: tracked files, quality metrics and issues."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cryptotrading.common.clock import utcnow
from cryptotrading.models._common import (
    Base,
    IdMixin,
    SoftDeleteMixin,
    TimestampMixin,
    table_args,
)


class CodeFile(IdMixin, TimestampMixin, SoftDeleteMixin, Base):
    """A source file under analysis."""

    __tablename__ = "code_files"
    __table_args__ = table_args("2.0.0")

    file_path: Mapped[str] = mapped_column(String(1024), unique=True)
    language: Mapped[str | None] = mapped_column(String(32))
    lines_of_code: Mapped[int | None]
    complexity_score: Mapped[float | None]
    test_coverage: Mapped[float | None]
    content_hash: Mapped[str | None] = mapped_column(String(64))
    last_analyzed_at: Mapped[datetime | None]


class CodeMetric(IdMixin, Base):
    """One quality measurement of a file."""

    __tablename__ = "code_metrics"
    __table_args__ = table_args("2.0.0", Index(None, "file_id", "metric_type"))

    file_id: Mapped[int] = mapped_column(ForeignKey("code_files.id", ondelete="CASCADE"))
    metric_type: Mapped[str] = mapped_column(String(64))
    metric_value: Mapped[float]
    details: Mapped[dict[str, Any] | None]
    measured_at: Mapped[datetime] = mapped_column(default=utcnow)


class Issue(IdMixin, TimestampMixin, SoftDeleteMixin, Base):
    """A code issue found by analysis or filed by hand."""

    __tablename__ = "issues"
    __table_args__ = table_args("2.0.0", Index(None, "status", "severity"))

    file_id: Mapped[int | None] = mapped_column(
        ForeignKey("code_files.id", ondelete="SET NULL"), index=True
    )
    issue_type: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    file_path: Mapped[str | None] = mapped_column(String(1024))
    line_number: Mapped[int | None]
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
