"""``cryptotrading models ...``: ML model registry and predictions."""

from __future__ import annotations

import json

import typer

from cryptotrading.cli._common import command_group, open_stores
from cryptotrading.cli._format import (
    ConfidenceOption,
    TimeframeFilterOption,
    json_object_option,
    open_app_engine,
    time_option,
)
from cryptotrading.cli._output import JsonOption, console, emit, print_table
from cryptotrading.intelligence import registry
from cryptotrading.intelligence.views import model_as_dict, prediction_as_dict

models_app = command_group("ML model registry and predictions.")

NameArgument = typer.Argument(..., help="Model name.")
VersionArgument = typer.Argument(..., help="Version.")
VersionOption = typer.Option(None, "--version", help="Default: the production version.")


@models_app.command()
def register(
    ctx: typer.Context,
    name: str = NameArgument,
    version: str = typer.Argument(..., help="Semantic version, e.g. 1.2.0."),
    framework: str | None = typer.Option(None, "--framework", help="sklearn, torch, xgboost ..."),
    artifact: str | None = typer.Option(None, "--artifact", help="Path (or URL) of the model."),
    sha256: str | None = typer.Option(None, "--sha256", help="Expected SHA-256 of the artifact."),
    metrics: str | None = typer.Option(None, "--metrics", help="JSON object of metrics."),
    params: str | None = typer.Option(None, "--params", help="JSON object of parameters."),
    description: str | None = typer.Option(None, "--description", help="Free text."),
    as_json: bool = JsonOption,
) -> None:
    """Register a model version (stage staging)."""
    model = registry.register_model(
        open_app_engine(ctx),
        name=name,
        version=version,
        framework=framework,
        artifact_path=artifact,
        artifact_sha256=sha256,
        metrics=json_object_option(metrics, "--metrics"),
        parameters=json_object_option(params, "--params"),
        description=description,
    )
    data = model_as_dict(model)
    emit(as_json, data, lambda: console.print(f"registered {name} {version} (staging)"))


@models_app.command()
def promote(
    ctx: typer.Context,
    name: str = NameArgument,
    version: str = typer.Argument(..., help="Version to put in production."),
    as_json: bool = JsonOption,
) -> None:
    """Put a version in production (the previous production version is archived)."""
    model = registry.promote(open_app_engine(ctx), name, version)
    emit(
        as_json,
        model_as_dict(model),
        lambda: console.print(f"{name} {version} is in production"),
    )


@models_app.command()
def stage(
    ctx: typer.Context,
    name: str = NameArgument,
    version: str = VersionArgument,
    new_stage: str = typer.Argument(..., help="staging, production or archived."),
    as_json: bool = JsonOption,
) -> None:
    """Move a version to a stage."""
    model = registry.set_stage(open_app_engine(ctx), name, version, new_stage)
    emit(
        as_json,
        model_as_dict(model),
        lambda: console.print(f"{name} {version} is {model.stage}"),
    )


@models_app.command("list")
def list_(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Only this model."),
    as_json: bool = JsonOption,
) -> None:
    """List registered versions."""
    models = registry.list_models(open_app_engine(ctx), name)
    emit(
        as_json,
        [model_as_dict(m) for m in models],
        lambda: print_table(
            "models",
            ["name", "version", "stage", "framework", "sha256", "evaluation"],
            [
                (
                    m.model_name,
                    m.version,
                    m.stage,
                    m.framework,
                    (m.artifact_sha256 or "")[:12],
                    json.dumps((m.performance_metrics or {}).get("evaluation", {}).get("by_type"))
                    if (m.performance_metrics or {}).get("evaluation")
                    else "",
                )
                for m in models
            ],
        ),
    )


@models_app.command()
def predict(
    ctx: typer.Context,
    name: str = NameArgument,
    value: float = typer.Option(..., "--value", help="The predicted value."),
    version: str | None = VersionOption,
    symbol: str | None = typer.Option(None, "--symbol", "-s", help="ccxt symbol."),
    prediction_type: str = typer.Option("price", "--type", help="price, return or direction."),
    confidence: float | None = ConfidenceOption,
    target_time: str | None = typer.Option(None, "--target", help="Predicted time (ISO-8601)."),
    at: str | None = typer.Option(None, "--at", help="Prediction time (default now)."),
    features: str | None = typer.Option(None, "--features", help="JSON object of inputs."),
    as_json: bool = JsonOption,
) -> None:
    """Log a prediction of a model version."""
    row = registry.log_prediction(
        open_app_engine(ctx),
        name=name,
        version=version,
        prediction=value,
        symbol=symbol,
        prediction_type=prediction_type,
        confidence=confidence,
        target_time=time_option(target_time, "--target"),
        made_at=time_option(at, "--at"),
        features=json_object_option(features, "--features"),
    )
    emit(as_json, prediction_as_dict(row), lambda: console.print(f"prediction {row.id} logged"))


@models_app.command()
def resolve(
    ctx: typer.Context,
    name: str = NameArgument,
    version: str | None = VersionOption,
    timeframe: str | None = TimeframeFilterOption,
    as_json: bool = JsonOption,
) -> None:
    """Fill in realized values of due predictions from the stored candles."""
    stores = open_stores(ctx)
    count = registry.resolve_actuals(
        stores.engine(stores.app),
        stores.engine(stores.market),
        name,
        version,
        timeframe=timeframe,
    )
    emit(as_json, {"resolved": count}, lambda: console.print(f"resolved {count} predictions"))


@models_app.command()
def evaluate(
    ctx: typer.Context,
    name: str = NameArgument,
    version: str | None = VersionOption,
    as_json: bool = JsonOption,
) -> None:
    """Compute accuracy / error metrics and store them as performance metrics."""
    metrics = registry.evaluate_model(open_app_engine(ctx), name, version)

    def render() -> None:
        rows = [
            (kind, key, value)
            for kind, entry in metrics["by_type"].items()
            for key, value in entry.items()
        ]
        print_table(f"evaluation of {name}", ["type", "metric", "value"], rows)

    emit(as_json, metrics, render)


@models_app.command()
def verify(
    ctx: typer.Context,
    name: str = NameArgument,
    version: str = VersionArgument,
    as_json: bool = JsonOption,
) -> None:
    """Check the artifact file against its registered SHA-256 (exit 1 on mismatch)."""
    ok = registry.verify_artifact(open_app_engine(ctx), name, version)
    emit(as_json, {"ok": ok}, lambda: console.print("artifact ok" if ok else "artifact CHANGED"))
    if not ok:
        raise typer.Exit(1)
