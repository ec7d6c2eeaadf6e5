"""Intelligence: analyses -> insights -> decisions -> orders, outcome evaluation at a
horizon, calibration reports, and the ML model registry."""

from cryptotrading.intelligence.decisions import (
    cancel_decision,
    decide,
    execute_decision,
    get_decision,
    list_decisions,
    list_insights,
    record_analysis,
    record_insight,
)
from cryptotrading.intelligence.outcomes import evaluate_decision, evaluate_pending
from cryptotrading.intelligence.registry import (
    evaluate_model,
    get_model,
    list_models,
    log_prediction,
    promote,
    register_model,
    resolve_actuals,
    set_stage,
    verify_artifact,
)
from cryptotrading.intelligence.reports import CalibrationRow, calibration_report, format_report

__all__ = [
    "CalibrationRow",
    "calibration_report",
    "cancel_decision",
    "decide",
    "evaluate_decision",
    "evaluate_model",
    "evaluate_pending",
    "execute_decision",
    "format_report",
    "get_decision",
    "get_model",
    "list_decisions",
    "list_insights",
    "list_models",
    "log_prediction",
    "promote",
    "record_analysis",
    "record_insight",
    "register_model",
    "resolve_actuals",
    "set_stage",
    "verify_artifact",
]
