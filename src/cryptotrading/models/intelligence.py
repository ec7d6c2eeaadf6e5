"""Category 3 -- AI and intelligence: analyses, insights, decisions, outcomes and
the ML model registry with its predictions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cryptotrading.models._common import (
    Base,
    CreatedAtMixin,
    IdMixin,
    SoftDeleteMixin,
    TimestampMixin,
    table_args,
)


class AIAnalysis(IdMixin, TimestampMixin, Base):
    """Output of one model's analysis of a symbol."""

    __tablename__ = "ai_analyses"
    __table_args__ = table_args("1.5.0", Index(None, "symbol", "created_at"))

    symbol: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    analysis_type: Mapped[str] = mapped_column(String(64))
    signal: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float | None]
    payload: Mapped[dict[str, Any] | None]


class AIInsight(IdMixin, TimestampMixin, Base):
    """An actionable insight, usually derived from an analysis."""

    __tablename__ = "ai_insights"
    __table_args__ = table_args(
        "1.5.0",
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_range"),
    )

    analysis_id: Mapped[int | None] = mapped_column(
        ForeignKey("ai_analyses.id", ondelete="SET NULL"), index=True
    )
    symbol: Mapped[str | None] = mapped_column(String(32))
    insight_type: Mapped[str] = mapped_column(String(64))
    recommendation: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float]
    rationale: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None]
    expires_at: Mapped[datetime | None]


class TradingDecision(IdMixin, TimestampMixin, SoftDeleteMixin, Base):
    """A decision to act on a symbol, with its lifecycle status."""

    __tablename__ = "trading_decisions"
    __table_args__ = table_args(
        "1.5.0",
        Index(None, "symbol", "created_at"),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_range"),
    )

    insight_id: Mapped[int | None] = mapped_column(
        ForeignKey("ai_insights.id", ondelete="SET NULL"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    symbol: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float]
    status: Mapped[str] = mapped_column(String(20), default="pending")
    quantity: Mapped[Decimal | None]
    price: Mapped[Decimal | None]
    reasoning: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None]


class DecisionOutcome(IdMixin, TimestampMixin, Base):
    """What a decision turned out to be worth at an evaluation horizon."""

    __tablename__ = "decision_outcomes"
    __table_args__ = table_args("1.5.0")

    decision_id: Mapped[int] = mapped_column(
        ForeignKey("trading_decisions.id", ondelete="CASCADE"), index=True
    )
    actual_outcome: Mapped[str] = mapped_column(String(32))
    horizon_minutes: Mapped[int | None]
    entry_price: Mapped[Decimal | None]
    exit_price: Mapped[Decimal | None]
    return_pct: Mapped[Decimal | None]
    profit_loss: Mapped[Decimal | None]
    is_correct: Mapped[bool | None]
    evaluated_at: Mapped[datetime | None]
    details: Mapped[dict[str, Any] | None]


class MLModel(IdMixin, TimestampMixin, SoftDeleteMixin, Base):
    """A registered version of a machine-learning model."""

    __tablename__ = "ml_model_registry"
    __table_args__ = table_args(
        "1.5.0",
        UniqueConstraint("model_name", "version"),
        CheckConstraint("stage IN ('staging', 'production', 'archived')", name="stage"),
    )

    model_name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(32))
    stage: Mapped[str] = mapped_column(String(16), default="staging")
    framework: Mapped[str | None] = mapped_column(String(64))
    performance_metrics: Mapped[dict[str, Any] | None]
    parameters: Mapped[dict[str, Any] | None]
    artifact_path: Mapped[str | None] = mapped_column(String(1024))
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)


class MLPrediction(IdMixin, CreatedAtMixin, Base):
    """One prediction logged by a registered model version."""

    __tablename__ = "ml_predictions"
    __table_args__ = table_args(
        "1.5.0", Index(None, "model_id", "created_at"), Index(None, "symbol", "target_time")
    )

    model_id: Mapped[int] = mapped_column(ForeignKey("ml_model_registry.id", ondelete="CASCADE"))
    symbol: Mapped[str | None] = mapped_column(String(32))
    prediction: Mapped[float]
    prediction_type: Mapped[str | None] = mapped_column(String(32))
    confidence: Mapped[float | None]
    features: Mapped[dict[str, Any] | None]
    target_time: Mapped[datetime | None]
    actual_value: Mapped[float | None]
