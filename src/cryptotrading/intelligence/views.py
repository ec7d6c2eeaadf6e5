"""JSON-ready views of intelligence rows (for the CLI and APIs)."""

from __future__ import annotations

from typing import Any

from cryptotrading.models.intelligence import (
    AIAnalysis,
    AIInsight,
    DecisionOutcome,
    MLPrediction,
    TradingDecision,
)
from cryptotrading.trading.clock import iso
from cryptotrading.trading.money import as_text


def analysis_as_dict(row: AIAnalysis) -> dict[str, Any]:
    return {
        "id": row.id,
        "symbol": row.symbol,
        "model": row.model,
        "analysis_type": row.analysis_type,
        "signal": row.signal,
        "confidence": row.confidence,
        "payload": row.payload,
        "created_at": iso(row.created_at),
    }


def insight_as_dict(row: AIInsight) -> dict[str, Any]:
    return {
        "id": row.id,
        "analysis_id": row.analysis_id,
        "symbol": row.symbol,
        "insight_type": row.insight_type,
        "recommendation": row.recommendation,
        "confidence": row.confidence,
        "rationale": row.rationale,
        "payload": row.payload,
        "expires_at": iso(row.expires_at),
        "created_at": iso(row.created_at),
    }


def decision_as_dict(row: TradingDecision) -> dict[str, Any]:
    return {
        "id": row.id,
        "insight_id": row.insight_id,
        "user_id": row.user_id,
        "symbol": row.symbol,
        "action": row.action,
        "confidence": row.confidence,
        "status": row.status,
        "quantity": as_text(row.quantity),
        "price": as_text(row.price),
        "reasoning": row.reasoning,
        "decided_at": iso(row.decided_at),
    }


def outcome_as_dict(row: DecisionOutcome) -> dict[str, Any]:
    return {
        "id": row.id,
        "decision_id": row.decision_id,
        "horizon_minutes": row.horizon_minutes,
        "actual_outcome": row.actual_outcome,
        "entry_price": as_text(row.entry_price),
        "exit_price": as_text(row.exit_price),
        "return_pct": as_text(row.return_pct),
        "profit_loss": as_text(row.profit_loss),
        "is_correct": row.is_correct,
        "evaluated_at": iso(row.evaluated_at),
        "details": row.details,
    }


def prediction_as_dict(row: MLPrediction) -> dict[str, Any]:
    return {
        "id": row.id,
        "model_id": row.model_id,
        "symbol": row.symbol,
        "prediction": row.prediction,
        "prediction_type": row.prediction_type,
        "confidence": row.confidence,
        "features": row.features,
        "target_time": iso(row.target_time),
        "actual_value": row.actual_value,
        "created_at": iso(row.created_at),
    }
