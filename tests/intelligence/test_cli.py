"""``cryptotrading decisions`` and ``models`` from the command line, both backends."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

from cryptotrading.stores import Stores
from tests.helpers import (
    SettingsFactory,
    invoke,
    invoke_json,
    load_candles,
    make_user,
    settings_env,
)


def test_decision_chain_cli(make_settings: SettingsFactory, market_data_dir: Path) -> None:
    settings = make_settings("three")
    env = settings_env(settings)
    with Stores(settings) as stores:
        make_user(stores.engine(stores.app), "dave")
        load_candles(stores.engine(stores.market), market_data_dir, "ETH/USDT")
    at = "2021-02-01T00:00:00Z"
    analysis = invoke_json(
        env,
        "decisions",
        "analyze",
        "--symbol",
        "ETH/USDT",
        "--model",
        "gpt-quant",
        "--type",
        "sentiment",
        "--signal",
        "bullish",
        "--confidence",
        "0.8",
        "--payload",
        '{"fear_greed": 78}',
        "--at",
        at,
        "--json",
    )
    insight = invoke_json(
        env,
        "decisions",
        "insight",
        "--analysis",
        str(analysis["id"]),
        "--type",
        "entry",
        "--recommendation",
        "buy",
        "--confidence",
        "0.8",
        "--at",
        at,
        "--json",
    )
    assert insight["symbol"] == "ETH/USDT"
    decision = invoke_json(
        env,
        "decisions",
        "decide",
        str(insight["id"]),
        "--user",
        "dave",
        "--quantity",
        "2",
        "--at",
        at,
        "--json",
    )
    assert decision["action"] == "buy" and decision["status"] == "pending"
    order = invoke_json(env, "decisions", "execute", str(decision["id"]), "--json")
    assert order["decision_id"] == decision["id"] and order["amount"] == "2"
    # ETH/USDT 1h candle opening 2021-02-01 00:00 UTC opened at 1314.86 (Binance)
    invoke_json(
        env,
        "orders",
        "fill",
        order["order_id"],
        "--price",
        "1314.86",
        "--amount",
        "2",
        "--fee",
        "2.62972",
        "--at",
        at,
        "--json",
    )
    evaluated = invoke_json(
        env, "decisions", "evaluate", "--horizon", "1440", "--timeframe", "1h", "--json"
    )
    [outcome] = evaluated["outcomes"]
    assert outcome["entry_price"] == "1314.86"
    assert outcome["details"]["entry_source"] == "fills"
    exit_price = outcome["exit_price"]
    assert Decimal(outcome["profit_loss"]) == 2 * (Decimal(exit_price) - Decimal("1314.86")) - (
        Decimal("2.62972")
    )
    report = invoke_json(env, "decisions", "report", "--horizon", "1440", "--json")
    assert report[0]["model"] == "gpt-quant" and report[0]["bucket"] == "0.80-0.90"
    assert report[0]["count"] == 1
    assert "calibration" in invoke(env, "decisions", "report", code=0).output
    assert invoke_json(env, "decisions", "list", "--json")[0]["status"] == "executed"
    bad = invoke(
        env,
        "decisions",
        "insight",
        "--type",
        "x",
        "--recommendation",
        "buy",
        "--confidence",
        "2",
        "--symbol",
        "ETH/USDT",
        code=5,
    )
    assert "outside 0..1" in bad.output and "hint:" in bad.output
    bad_json = invoke(
        env,
        "decisions",
        "analyze",
        "--symbol",
        "ETH/USDT",
        "--model",
        "m",
        "--type",
        "t",
        "--signal",
        "s",
        "--payload",
        "{oops",
        code=5,
    )
    assert "not valid JSON" in bad_json.output


def test_models_cli(make_settings: SettingsFactory, tmp_path: Path, market_data_dir: Path) -> None:
    settings = make_settings("three")
    env = settings_env(settings)
    with Stores(settings) as stores:
        load_candles(stores.engine(stores.market), market_data_dir, "BTC/USDT")
    artifact = tmp_path / "model.pkl"
    artifact.write_bytes(b"pickled model")
    registered = invoke_json(
        env,
        "models",
        "register",
        "trend",
        "1.0.0",
        "--framework",
        "sklearn",
        "--artifact",
        str(artifact),
        "--metrics",
        '{"auc": 0.61}',
        "--json",
    )
    assert registered["artifact_sha256"] == hashlib.sha256(b"pickled model").hexdigest()
    invoke_json(env, "models", "register", "trend", "1.1.0", "--json")
    invoke_json(env, "models", "promote", "trend", "1.0.0", "--json")
    assert (
        invoke_json(env, "models", "promote", "trend", "1.1.0", "--json")["stage"] == "production"
    )
    stages = {m["version"]: m["stage"] for m in invoke_json(env, "models", "list", "--json")}
    assert stages == {"1.0.0": "archived", "1.1.0": "production"}
    invoke_json(
        env,
        "models",
        "predict",
        "trend",
        "--value",
        "0.01",
        "--type",
        "return",
        "--symbol",
        "BTC/USDT",
        "--confidence",
        "0.6",
        "--at",
        "2021-03-01T00:00:00Z",
        "--target",
        "2021-03-02T00:00:00Z",
        "--json",
    )
    assert invoke_json(env, "models", "resolve", "trend", "--json") == {"resolved": 1}
    metrics = invoke_json(env, "models", "evaluate", "trend", "--json")
    assert metrics["by_type"]["return"]["count"] == 1
    assert invoke_json(env, "models", "verify", "trend", "1.0.0", "--json") == {"ok": True}
    artifact.write_bytes(b"changed")
    invoke(env, "models", "verify", "trend", "1.0.0", code=1)
    dup = invoke(env, "models", "register", "trend", "1.0.0", code=5)
    assert "already registered" in dup.output
    bad = invoke(env, "models", "register", "trend", "v2", code=5)
    assert "not a semantic version" in bad.output
