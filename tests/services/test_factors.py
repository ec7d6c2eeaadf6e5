"""Factors, the real Fear & Greed import, sentiment / on-chain / macro series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine

from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.models.analytics import (
    FactorData,
    FactorDefinition,
    MacroData,
    OnchainData,
    SentimentData,
)
from cryptotrading.services import factors
from tests.helpers import count_rows

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def fng_file(market_data_dir: Path) -> Path:
    return market_data_dir / "sentiment" / "CRYPTO_FNG_INDEX.csv"


def test_define_and_upsert_factor_values(app_engine: Engine) -> None:
    factor = factors.define_factor(
        app_engine,
        "rsi_14",
        "momentum",
        formula="RSI(close, 14)",
        lookback_hours=14,
        parameters={"period": 14},
    )
    assert factor.is_active and factor.lookback_hours == 14
    factors.define_factor(app_engine, "rsi_14", "technical")
    assert [f.category for f in factors.list_factors(app_engine)] == ["technical"]
    series = pd.Series([30.0, 45.5, 70.25], index=pd.date_range(T0, periods=3, freq="h", tz="UTC"))
    assert factors.record_factor_values(app_engine, "rsi_14", "BTC/USDT", series) == 3
    # Re-recording overlapping times updates instead of duplicating.
    factors.record_factor_values(
        app_engine,
        "rsi_14",
        "BTC/USDT",
        [(T0 + timedelta(hours=2), 71.0), (T0 + timedelta(hours=3), 65.0)],
        quality_score=0.9,
    )
    assert count_rows(app_engine, FactorData) == 4
    frame = factors.factor_series(app_engine, "rsi_14", "BTC/USDT")
    assert list(frame["value"]) == [30.0, 45.5, 71.0, 65.0]
    assert str(frame.index.tz) == "UTC" and frame.index[0] == pd.Timestamp(T0)
    assert frame["quality_score"].isna().sum() == 2
    assert frame["value"].dtype == "float64" and frame["quality_score"].dtype == "float64"
    window = factors.factor_series(
        app_engine, "rsi_14", "BTC/USDT", start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=3)
    )
    assert list(window["value"]) == [45.5, 71.0]
    assert factors.factor_series(app_engine, "rsi_14", "ETH/USDT").empty


def test_factor_values_bad_input_writes_nothing(app_engine: Engine) -> None:
    factors.define_factor(app_engine, "mom", "momentum")
    factors.define_factor(app_engine, "old", "momentum", is_active=False)
    good = (T0, 1.0)
    cases: list[tuple[object, type[Exception], str]] = [
        (
            lambda: factors.record_factor_values(app_engine, "nope", "BTC", [good]),
            NotFoundError,
            "not defined",
        ),
        (
            lambda: factors.record_factor_values(app_engine, "old", "BTC", [good]),
            NotFoundError,
            "inactive",
        ),
        (
            lambda: factors.record_factor_values(
                app_engine, "mom", "BTC", [good, (T0, float("nan"))]
            ),
            ValidationError,
            "twice",
        ),
        (
            lambda: factors.record_factor_values(
                app_engine, "mom", "BTC", [good, (T0 + timedelta(1), float("inf"))]
            ),
            ValidationError,
            "finite",
        ),
        (
            lambda: factors.record_factor_values(app_engine, "mom", "BTC", [good, ("2024", 1.0)]),
            ValidationError,
            "datetime",
        ),
        (
            lambda: factors.record_factor_values(app_engine, "mom", "", [good]),
            ValidationError,
            "symbol",
        ),
        (
            lambda: factors.record_factor_values(app_engine, "mom", "BTC", [good], quality_score=2),
            ValidationError,
            "quality_score",
        ),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()  # type: ignore[operator]
    assert count_rows(app_engine, FactorData) == 0
    with pytest.raises(ValidationError, match="lookback_hours"):
        factors.define_factor(app_engine, "x", "y", lookback_hours=0)
    with pytest.raises(NotFoundError):
        factors.factor_series(app_engine, "x", "BTC")
    assert count_rows(app_engine, FactorDefinition) == 2


def test_import_real_fear_greed_idempotently(app_engine: Engine, fng_file: Path) -> None:
    seen: list[tuple[int, int]] = []
    report = factors.import_fear_greed(
        app_engine, fng_file, progress=lambda d, t: seen.append((d, t))
    )
    lines = [line for line in fng_file.read_text().splitlines() if line.strip()]
    assert report.rows == report.inserted == len(lines) > 2500
    assert report.first == datetime(2018, 2, 1, tzinfo=UTC)
    assert report.last == datetime(2025, 3, 2, tzinfo=UTC)
    assert seen[-1] == (len(lines), len(lines))
    frame = factors.sentiment_series(app_engine, "BTC", source="alternative.me")
    assert list(frame["fear_greed_index"][:5]) == [30, 15, 40, 24, 11]  # see SOURCES.md
    assert frame["fear_greed_index"].between(0, 100).all()
    assert str(frame["fear_greed_index"].dtype) == "Int64"
    assert pd.Timestamp("2024-10-26", tz="UTC") not in frame.index  # a real gap in the data
    again = factors.import_fear_greed(app_engine, fng_file)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(lines))
    assert count_rows(app_engine, SentimentData) == len(lines)
    eth = factors.import_fear_greed(app_engine, fng_file, symbol="ETH")
    assert eth.inserted == len(lines)
    assert factors.sentiment_count(app_engine, "ETH") == len(lines)


def test_import_updates_changed_values(app_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "fng.csv"
    path.write_text("20240101T,50,50,50,50,0\n20240102T,60,60,60,60,0\n")
    factors.import_fear_greed(app_engine, path)
    path.write_text("20240101T,50,50,50,50,0\n20240102T,61,61,61,61,0\n20240103T,7,7,7,7,0\n")
    report = factors.import_fear_greed(app_engine, path)
    assert (report.inserted, report.updated, report.unchanged) == (1, 1, 1)
    assert list(factors.sentiment_series(app_engine, "BTC")["fear_greed_index"]) == [50, 61, 7]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("20240101T,50,50,50,50\n", "expected 6 fields"),
        ("2024-01-01,50,50,50,50,0\n", "cannot parse"),
        ("20240101T,50,50,50,101,0\n", "0..100"),
        ("20240101T,50,50,50,50.5,0\n", "whole number"),
        ("20240101T,50,50,50,nan,0\n", "whole number"),
        ("20240101T,5,5,5,5,0\n20240101T,6,6,6,6,0\n", "twice"),
        ("\n", "no data"),
    ],
)
def test_import_rejects_bad_files(
    app_engine: Engine, tmp_path: Path, content: str, match: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("20231231T,40,40,40,40,0\n" + content)
    if match == "no data":
        path.write_text(content)
    with pytest.raises(ValidationError, match=match) as info:
        factors.import_fear_greed(app_engine, path)
    assert "YYYYMMDDT" in info.value.hint or match == "no data"
    assert count_rows(app_engine, SentimentData) == 0


def test_import_missing_file(app_engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        factors.import_fear_greed(app_engine, tmp_path / "missing.csv")


def test_onchain_and_macro_series(app_engine: Engine) -> None:
    factors.record_onchain(
        app_engine,
        "BTC",
        T0,
        source="glassnode",
        active_addresses=900_000,
        transaction_volume=1.5e9,
    )
    factors.record_onchain(app_engine, "BTC", T0, source="glassnode", active_addresses=910_000)
    factors.record_onchain(app_engine, "BTC", T0 + timedelta(days=1), hash_rate=5.5e20)
    assert count_rows(app_engine, OnchainData) == 2
    chain = factors.onchain_series(app_engine, "BTC")
    assert list(chain["active_addresses"][:1]) == [910_000]
    assert chain["transaction_volume"].iloc[0] == 1.5e9
    assert str(chain["active_addresses"].dtype) == "Int64" and chain["hash_rate"].isna().iloc[0]
    assert factors.onchain_series(app_engine, "BTC", source="glassnode").shape[0] == 1
    factors.record_macro(app_engine, "BTC", T0, source="fred", interest_rates=5.33, vix=13.2)
    macro = factors.macro_series(app_engine, "BTC", start=T0, end=T0 + timedelta(hours=1))
    assert macro.iloc[0]["vix"] == 13.2 and macro.iloc[0]["source"] == "fred"
    factors.record_sentiment(
        app_engine, "ETH", T0, source="lunarcrush", social_volume=1234.0, sentiment_score=0.4
    )
    assert factors.sentiment_series(app_engine, "ETH").iloc[0]["social_volume"] == 1234.0
    with pytest.raises(ValidationError, match="unknown"):
        factors.record_onchain(app_engine, "BTC", T0, vix=1.0)
    with pytest.raises(ValidationError, match="missing"):
        factors.record_macro(app_engine, "BTC", T0)
    with pytest.raises(ValidationError, match="active_addresses"):
        factors.record_onchain(app_engine, "BTC", T0, active_addresses=1.5)
    with pytest.raises(ValidationError, match="finite"):
        factors.record_macro(app_engine, "BTC", T0, vix=float("nan"))
    assert count_rows(app_engine, OnchainData) == 2 and count_rows(app_engine, MacroData) == 1
