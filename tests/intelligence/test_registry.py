"""The ML model registry: versions, stages, artifacts, predictions, evaluation."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from cryptotrading.db import unit_of_work
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.intelligence import (
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
from cryptotrading.intelligence.registry import version_key
from cryptotrading.models.intelligence import MLModel, MLPrediction
from cryptotrading.trading.prices import candle_at_or_after

T0 = datetime(2021, 2, 1, tzinfo=UTC)


def _artifact(tmp_path: Path, content: bytes = b"weights") -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    return path


def test_register_promote_one_production_per_name(app_engine: Engine, tmp_path: Path) -> None:
    artifact = _artifact(tmp_path)
    first = register_model(
        app_engine,
        name="lstm-btc",
        version="1.0.0",
        framework="torch",
        artifact_path=str(artifact),
        metrics={"val_loss": 0.12},
    )
    assert first.stage == "staging"
    assert first.artifact_sha256 == hashlib.sha256(b"weights").hexdigest()
    register_model(app_engine, name="lstm-btc", version="1.1.0-rc.1")
    register_model(app_engine, name="lstm-btc", version="1.1.0")
    register_model(app_engine, name="xgb-eth", version="0.3.0")
    promote(app_engine, "lstm-btc", "1.0.0")
    promote(app_engine, "xgb-eth", "0.3.0")
    promote(app_engine, "lstm-btc", "1.1.0")
    stages = {(m.model_name, m.version): m.stage for m in list_models(app_engine)}
    assert stages == {
        ("lstm-btc", "1.0.0"): "archived",
        ("lstm-btc", "1.1.0-rc.1"): "staging",
        ("lstm-btc", "1.1.0"): "production",
        ("xgb-eth", "0.3.0"): "production",
    }
    assert [m.version for m in list_models(app_engine, "lstm-btc")] == [
        "1.0.0",
        "1.1.0-rc.1",
        "1.1.0",
    ]
    assert get_model(app_engine, "lstm-btc").version == "1.1.0"
    set_stage(app_engine, "lstm-btc", "1.1.0", "archived")
    with pytest.raises(NotFoundError, match="no production version"):
        get_model(app_engine, "lstm-btc")
    assert verify_artifact(app_engine, "lstm-btc", "1.0.0")
    artifact.write_bytes(b"tampered")
    assert not verify_artifact(app_engine, "lstm-btc", "1.0.0")


def test_semver_order() -> None:
    ordered = ["0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0", "1.0.1", "1.10.0"]
    assert sorted(reversed(ordered), key=version_key) == ordered


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"version": "1.0"}, "not a semantic version"),
        ({"version": "01.0.0"}, "not a semantic version"),
        ({"name": ""}, "non-empty"),
        ({"artifact_path": "/nonexistent/model.bin"}, "not a readable file"),
        ({"artifact_sha256": "abc"}, "64 lowercase hex"),
        ({"metrics": [1, 2]}, "must be a JSON object"),
    ],
)
def test_bad_registrations_write_nothing(
    app_engine: Engine, fields: dict[str, object], message: str
) -> None:
    kwargs: dict[str, object] = {"name": "m", "version": "1.0.0", **fields}
    with pytest.raises(ValidationError, match=message):
        register_model(app_engine, **kwargs)  # type: ignore[arg-type]
    with unit_of_work(app_engine) as session:
        assert session.scalar(select(func.count()).select_from(MLModel)) == 0


def test_duplicates_wrong_digests_and_stages(app_engine: Engine, tmp_path: Path) -> None:
    artifact = _artifact(tmp_path)
    with pytest.raises(ValidationError, match="not the"):
        register_model(
            app_engine,
            name="m",
            version="1.0.0",
            artifact_path=str(artifact),
            artifact_sha256="0" * 64,
        )
    register_model(app_engine, name="m", version="1.0.0")
    with pytest.raises(ValidationError, match="already registered"):
        register_model(app_engine, name="m", version="1.0.0")
    with pytest.raises(ValidationError, match="stage 'live'"):
        set_stage(app_engine, "m", "1.0.0", "live")
    with pytest.raises(NotFoundError, match="not registered"):
        promote(app_engine, "m", "9.9.9")
    with pytest.raises(NotFoundError, match="no production version"):
        log_prediction(app_engine, name="m", prediction=1.0)
    with unit_of_work(app_engine) as session:
        assert session.scalar(select(func.count()).select_from(MLModel)) == 1
        assert session.scalar(select(func.count()).select_from(MLPrediction)) == 0


def test_predictions_resolved_from_candles_and_evaluated(
    app_engine: Engine, market_engine: Engine, candles: dict[str, int]
) -> None:
    register_model(app_engine, name="naive", version="1.0.0", metrics={"trained_on": "2020"})
    register_model(app_engine, name="naive", version="2.0.0")
    promote(app_engine, "naive", "1.0.0")
    # a naive forecaster: tomorrow's price is today's price; direction = last day's sign
    expected_abs_errors = []
    ups = 0
    for day in range(10):
        made = T0 + timedelta(days=day)
        now = candle_at_or_after(market_engine, "BTC/USDT", made, timeframe="1h").open
        later = candle_at_or_after(
            market_engine, "BTC/USDT", made + timedelta(days=1), timeframe="1h"
        ).open
        expected_abs_errors.append(abs(float(now) - float(later)))
        ups += later > now
        log_prediction(
            app_engine,
            name="naive",
            symbol="BTC/USDT",
            prediction=float(now),
            prediction_type="price",
            confidence=0.5,
            target_time=made + timedelta(days=1),
            made_at=made,
        )
        log_prediction(
            app_engine,
            name="naive",
            version="2.0.0",
            symbol="BTC/USDT",
            prediction=1.0,
            prediction_type="direction",
            target_time=made + timedelta(days=1),
            made_at=made,
        )
    # one prediction beyond the end of the data stays unresolved
    log_prediction(
        app_engine,
        name="naive",
        symbol="BTC/USDT",
        prediction=30000.0,
        target_time=datetime(2021, 8, 1, tzinfo=UTC),
        made_at=datetime(2021, 7, 31, tzinfo=UTC),
    )
    assert resolve_actuals(app_engine, market_engine, "naive", timeframe="1h") == 10
    assert resolve_actuals(app_engine, market_engine, "naive", "2.0.0", timeframe="1h") == 10
    metrics = evaluate_model(app_engine, "naive")
    price = metrics["by_type"]["price"]
    assert price["count"] == 10
    assert price["mae"] == pytest.approx(sum(expected_abs_errors) / 10)
    assert price["mean_confidence"] == pytest.approx(0.5)
    stored = get_model(app_engine, "naive", "1.0.0").performance_metrics
    assert stored is not None and stored["trained_on"] == "2020"
    assert stored["evaluation"]["by_type"]["price"]["mae"] == pytest.approx(price["mae"])
    direction = evaluate_model(app_engine, "naive", "2.0.0")["by_type"]["direction"]
    assert direction["direction_accuracy"] == pytest.approx(ups / 10)
    with pytest.raises(ValidationError, match="before the prediction time"):
        log_prediction(
            app_engine, name="naive", prediction=1.0, target_time=T0, made_at=T0 + timedelta(1)
        )
    with pytest.raises(ValidationError, match="prediction type"):
        log_prediction(app_engine, name="naive", prediction=1.0, prediction_type="vibes")
    with pytest.raises(ValidationError, match="no prediction with an actual value"):
        register_model(app_engine, name="empty", version="0.1.0")
        evaluate_model(app_engine, "empty", "0.1.0")
