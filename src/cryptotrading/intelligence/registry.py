"""The ML model registry: semantic versions, stages, artifacts, predictions and
their evaluation.

* A version is registered in ``staging``; :func:`set_stage` moves it to
  ``production`` (archiving the previous production version of the same name, in
  the same transaction with the name's rows locked: one production version per
  model name) or ``archived``.
* The artifact's SHA-256 is computed from the file (or checked against it).
* :func:`log_prediction` records a prediction of a version; :func:`resolve_actuals`
  fills ``actual_value`` from the market store's candles; :func:`evaluate_model`
  computes error and direction metrics and stores them in
  ``performance_metrics["evaluation"]``.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cryptotrading.common.checks import document, probability, text
from cryptotrading.common.clock import maybe_utc, utcnow
from cryptotrading.db import unit_of_work
from cryptotrading.db.session import read_session
from cryptotrading.errors import IntegrityViolationError, NotFoundError, ValidationError
from cryptotrading.models.intelligence import MLModel, MLPrediction
from cryptotrading.trading.orders import validate_symbol
from cryptotrading.trading.prices import candle_at_or_after

#: semver.org 2.0.0 (MAJOR.MINOR.PATCH[-pre][+build]).
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
STAGES = ("staging", "production", "archived")
PREDICTION_TYPES = ("price", "return", "direction")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def version_key(version: str) -> tuple[Any, ...]:
    """Sort key of a semantic version (pre-releases before the release)."""
    match = SEMVER.match(version)
    if match is None:
        return (math.inf,)
    major, minor, patch, pre, _build = match.groups()
    pre_key: tuple[Any, ...] = (1,)
    if pre:
        pre_key = (0, *((0, int(p)) if p.isdigit() else (1, p) for p in pre.split(".")))
    return (int(major), int(minor), int(patch), pre_key)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_version(version: str) -> str:
    if not isinstance(version, str) or SEMVER.match(version) is None or len(version) > 32:
        raise ValidationError(
            f"version {version!r} is not a semantic version",
            hint="Use MAJOR.MINOR.PATCH, for example 1.2.0 or 2.0.0-rc.1.",
        )
    return version


def _artifact(path: str | None, sha256: str | None) -> tuple[str | None, str | None]:
    if sha256 is not None and SHA256.match(sha256) is None:
        raise ValidationError(
            f"artifact sha256 {sha256!r} is not 64 lowercase hex digits",
            hint="Give the hex SHA-256 digest of the artifact, or leave it out.",
        )
    if path is None:
        return None, sha256
    local = Path(path)
    if local.is_file():
        actual = file_sha256(local)
        if sha256 is not None and sha256 != actual:
            raise ValidationError(
                f"artifact {path} has sha256 {actual}, not the {sha256} given",
                hint="The file changed or the digest is wrong; nothing was registered.",
            )
        return str(local.resolve()), actual
    if "://" in path and sha256 is not None:
        return path, sha256  # a remote artifact (s3://, https://) with a known digest
    raise ValidationError(
        f"artifact {path} is not a readable file",
        hint="Give the path of the saved model, or a URL together with --sha256.",
    )


def register_model(
    engine: Engine,
    *,
    name: str,
    version: str,
    framework: str | None = None,
    parameters: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    artifact_path: str | None = None,
    artifact_sha256: str | None = None,
    description: str | None = None,
) -> MLModel:
    """Register a model version in ``staging``."""
    path, digest = _artifact(artifact_path, artifact_sha256)
    model = MLModel(
        model_name=text(name, "model name", limit=128),
        version=_check_version(version),
        stage="staging",
        framework=framework,
        parameters=document(parameters, "parameters"),
        performance_metrics=document(metrics, "metrics"),
        artifact_path=path,
        artifact_sha256=digest,
        description=description,
    )
    duplicate = ValidationError(
        f"model {name} version {version} is already registered",
        hint="Register a new version; a registered version never changes.",
    )
    try:
        with unit_of_work(engine, "app store") as session:
            if _find(session, name, version) is not None:
                raise duplicate
            session.add(model)
            session.flush()
            return model
    except IntegrityViolationError:
        raise duplicate from None


def _find(session: Session, name: str, version: str) -> MLModel | None:
    return session.execute(
        select(MLModel).where(
            MLModel.model_name == name,
            MLModel.version == version,
            MLModel.deleted_at.is_(None),
        )
    ).scalar_one_or_none()


def get_model(engine: Engine, name: str, version: str | None = None) -> MLModel:
    """A version of *name*; without *version*, the production version."""
    with read_session(engine, "app store") as session:
        return _resolve(session, name, version)


def _resolve(session: Session, name: str, version: str | None) -> MLModel:
    if version is not None:
        model = _find(session, name, version)
        if model is None:
            raise NotFoundError(
                f"model {name} version {version} is not registered",
                hint="List versions with `cryptotrading models list`.",
            )
        return model
    production = session.execute(
        select(MLModel).where(
            MLModel.model_name == name,
            MLModel.stage == "production",
            MLModel.deleted_at.is_(None),
        )
    ).scalar_one_or_none()
    if production is None:
        raise NotFoundError(
            f"model {name} has no production version",
            hint="Promote one with `cryptotrading models promote NAME VERSION`, or give --version.",
        )
    return production


def set_stage(engine: Engine, name: str, version: str, stage: str) -> MLModel:
    """Move a version to *stage*; promoting to production archives the previous
    production version of the same name (one transaction, rows locked)."""
    if stage not in STAGES:
        raise ValidationError(
            f"stage {stage!r} is not one of {', '.join(STAGES)}",
            hint=f"Use one of: {', '.join(STAGES)}.",
        )
    with unit_of_work(engine, "app store") as session:
        versions = list(
            session.execute(
                select(MLModel)
                .where(MLModel.model_name == name, MLModel.deleted_at.is_(None))
                .order_by(MLModel.id)
                .with_for_update()
            ).scalars()
        )
        target = next((m for m in versions if m.version == version), None)
        if target is None:
            raise NotFoundError(
                f"model {name} version {version} is not registered",
                hint="List versions with `cryptotrading models list`.",
            )
        if stage == "production":
            for other in versions:
                if other is not target and other.stage == "production":
                    other.stage = "archived"
            session.flush()
        target.stage = stage
        session.flush()
        return target


def promote(engine: Engine, name: str, version: str) -> MLModel:
    """Shortcut for :func:`set_stage` to ``production``."""
    return set_stage(engine, name, version, "production")


def list_models(engine: Engine, name: str | None = None) -> list[MLModel]:
    """Registered versions, by name then semantic version."""
    query = select(MLModel).where(MLModel.deleted_at.is_(None))
    if name is not None:
        query = query.where(MLModel.model_name == name)
    with read_session(engine, "app store") as session:
        models = list(session.execute(query).scalars())
    return sorted(models, key=lambda m: (m.model_name, version_key(m.version)))


def verify_artifact(engine: Engine, name: str, version: str) -> bool:
    """Whether the artifact file still has its registered SHA-256."""
    model = get_model(engine, name, version)
    if model.artifact_path is None or model.artifact_sha256 is None:
        raise ValidationError(
            f"model {name} {version} has no artifact to verify", hint="Register one."
        )
    path = Path(model.artifact_path)
    if not path.is_file():
        raise NotFoundError(
            f"artifact {path} of model {name} {version} is missing",
            hint="Restore the file from backup.",
        )
    return file_sha256(path) == model.artifact_sha256


def log_prediction(
    engine: Engine,
    *,
    name: str,
    prediction: float,
    version: str | None = None,
    symbol: str | None = None,
    prediction_type: str = "price",
    confidence: float | None = None,
    features: dict[str, Any] | None = None,
    target_time: datetime | None = None,
    made_at: datetime | None = None,
    actual_value: float | None = None,
) -> MLPrediction:
    """Record a prediction of a model version (default: the production version)."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValidationError(
            f"prediction type {prediction_type!r} is not supported",
            hint=f"Use one of: {', '.join(PREDICTION_TYPES)}.",
        )
    value = float(prediction)
    if not math.isfinite(value):
        raise ValidationError(f"prediction {prediction!r} is not finite", hint="Give a number.")
    made = maybe_utc(made_at, "made_at") or utcnow()
    target_time = maybe_utc(target_time, "target_time")
    if target_time is not None and target_time < made:
        raise ValidationError(
            f"target time {target_time.isoformat()} is before the prediction time",
            hint="Predict a time after the prediction is made.",
        )
    with unit_of_work(engine, "app store") as session:
        model = _resolve(session, name, version)
        row = MLPrediction(
            model_id=model.id,
            symbol=None if symbol is None else validate_symbol(symbol),
            prediction=value,
            prediction_type=prediction_type,
            confidence=None if confidence is None else probability(confidence),
            features=document(features, "features"),
            target_time=target_time,
            actual_value=actual_value,
            created_at=made,
        )
        session.add(row)
        session.flush()
        return row


def record_actual(engine: Engine, prediction_id: int, actual_value: float) -> MLPrediction:
    """Store the realized value of a prediction."""
    if not math.isfinite(float(actual_value)):
        raise ValidationError("actual value is not finite", hint="Give a number.")
    with unit_of_work(engine, "app store") as session:
        row = session.get(MLPrediction, prediction_id)
        if row is None:
            raise NotFoundError(f"prediction {prediction_id} does not exist")
        row.actual_value = float(actual_value)
        return row


def resolve_actuals(
    app_engine: Engine,
    market_engine: Engine,
    name: str,
    version: str | None = None,
    *,
    timeframe: str | None = None,
    max_gap: timedelta = timedelta(hours=6),
) -> int:
    """Fill ``actual_value`` of the version's due predictions from the candles:
    ``price`` = open at the target time; ``return`` = that over the open at the
    prediction time, minus 1; ``direction`` = the sign of that return.
    Returns how many were resolved (those without candles yet are left)."""
    with read_session(app_engine, "app store") as session:
        model = _resolve(session, name, version)
        pending = list(
            session.execute(
                select(MLPrediction).where(
                    MLPrediction.model_id == model.id,
                    MLPrediction.actual_value.is_(None),
                    MLPrediction.target_time.is_not(None),
                    MLPrediction.symbol.is_not(None),
                )
            ).scalars()
        )
    actuals: dict[int, float] = {}
    for row in pending:
        assert row.symbol is not None and row.target_time is not None
        try:
            target = candle_at_or_after(
                market_engine, row.symbol, row.target_time, timeframe=timeframe
            )
            if target.time - row.target_time > max_gap:
                continue
            if row.prediction_type == "price":
                actuals[row.id] = float(target.open)
                continue
            start = candle_at_or_after(
                market_engine, row.symbol, row.created_at, timeframe=timeframe
            )
        except NotFoundError:
            continue
        change = float(target.open / start.open - 1)
        actuals[row.id] = change if row.prediction_type == "return" else float(np.sign(change))
    with unit_of_work(app_engine, "app store") as session:
        for prediction_id, value in actuals.items():
            stored = session.get(MLPrediction, prediction_id)
            if stored is not None and stored.actual_value is None:
                stored.actual_value = value
    return len(actuals)


def evaluate_model(engine: Engine, name: str, version: str | None = None) -> dict[str, Any]:
    """Error metrics of a version's resolved predictions, stored in
    ``performance_metrics["evaluation"]`` and returned.

    ``count``, ``mae``, ``rmse``, ``bias`` (mean prediction - actual); for prices
    ``mape`` (%); for returns and directions ``direction_accuracy`` (share of
    predictions with the actual's sign); ``mean_confidence`` when logged.
    """
    with unit_of_work(engine, "app store") as session:
        model = _resolve(session, name, version)
        rows = list(
            session.execute(
                select(MLPrediction).where(
                    MLPrediction.model_id == model.id, MLPrediction.actual_value.is_not(None)
                )
            ).scalars()
        )
        if not rows:
            raise ValidationError(
                f"model {name} {model.version} has no prediction with an actual value",
                hint="Log predictions and resolve them (`cryptotrading models resolve`) first.",
            )
        metrics: dict[str, Any] = {"evaluated_at": utcnow().isoformat(), "by_type": {}}
        for kind in sorted({r.prediction_type or "price" for r in rows}):
            subset = [r for r in rows if (r.prediction_type or "price") == kind]
            predicted = np.array([r.prediction for r in subset], dtype=np.float64)
            actual = np.array([r.actual_value for r in subset], dtype=np.float64)
            error = predicted - actual
            entry: dict[str, Any] = {
                "count": len(subset),
                "mae": float(np.mean(np.abs(error))),
                "rmse": float(np.sqrt(np.mean(error**2))),
                "bias": float(np.mean(error)),
            }
            if kind == "price":
                nonzero = actual != 0
                if nonzero.any():
                    entry["mape"] = float(np.mean(np.abs(error[nonzero] / actual[nonzero])) * 100)
            else:
                entry["direction_accuracy"] = float(np.mean(np.sign(predicted) == np.sign(actual)))
            confidences = [r.confidence for r in subset if r.confidence is not None]
            if confidences:
                entry["mean_confidence"] = float(np.mean(confidences))
            metrics["by_type"][kind] = entry
        metrics["count"] = len(rows)
        model.performance_metrics = {**(model.performance_metrics or {}), "evaluation": metrics}
        return metrics
