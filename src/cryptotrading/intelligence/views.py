"""JSON-ready views of intelligence rows (for the CLI and APIs): which columns each
view shows, in order; :func:`cryptotrading.common.views.row_view` converts them
(datetimes as ISO text, decimals as plain text)."""

from __future__ import annotations

from typing import Any

from cryptotrading.common.views import row_view
from cryptotrading.models.intelligence import (
    AIAnalysis,
    AIInsight,
    DecisionOutcome,
    MLModel,
    MLPrediction,
    TradingDecision,
)

ANALYSIS_FIELDS = (
    "id",
    "symbol",
    "model",
    "analysis_type",
    "signal",
    "confidence",
    "payload",
    "created_at",
)
INSIGHT_FIELDS = (
    "id",
    "analysis_id",
    "symbol",
    "insight_type",
    "recommendation",
    "confidence",
    "rationale",
    "payload",
    "expires_at",
    "created_at",
)
DECISION_FIELDS = (
    "id",
    "insight_id",
    "user_id",
    "symbol",
    "action",
    "confidence",
    "status",
    "quantity",
    "price",
    "reasoning",
    "decided_at",
)
OUTCOME_FIELDS = (
    "id",
    "decision_id",
    "horizon_minutes",
    "actual_outcome",
    "entry_price",
    "exit_price",
    "return_pct",
    "profit_loss",
    "is_correct",
    "evaluated_at",
    "details",
)
PREDICTION_FIELDS = (
    "id",
    "model_id",
    "symbol",
    "prediction",
    "prediction_type",
    "confidence",
    "features",
    "target_time",
    "actual_value",
    "created_at",
)
MODEL_FIELDS = (
    "id",
    "model_name",
    "version",
    "stage",
    "framework",
    "artifact_path",
    "artifact_sha256",
    "performance_metrics",
    "parameters",
    "description",
)


def analysis_as_dict(row: AIAnalysis) -> dict[str, Any]:
    return row_view(row, ANALYSIS_FIELDS)


def insight_as_dict(row: AIInsight) -> dict[str, Any]:
    return row_view(row, INSIGHT_FIELDS)


def decision_as_dict(row: TradingDecision) -> dict[str, Any]:
    return row_view(row, DECISION_FIELDS)


def outcome_as_dict(row: DecisionOutcome) -> dict[str, Any]:
    return row_view(row, OUTCOME_FIELDS)


def prediction_as_dict(row: MLPrediction) -> dict[str, Any]:
    return row_view(row, PREDICTION_FIELDS)


def model_as_dict(row: MLModel) -> dict[str, Any]:
    return row_view(row, MODEL_FIELDS)
