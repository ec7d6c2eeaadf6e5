"""``cryptotrading services ...`` through a local Typer app, on both backends."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session

from cryptotrading.common.clock import utcnow
from cryptotrading.models.agents import A2AMessage
from cryptotrading.models.analytics import SentimentData
from cryptotrading.models.caching import CacheEntry
from cryptotrading.services.cache import Cache
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, count_rows, invoke, invoke_json, settings_env


def test_agents_commands(make_settings: SettingsFactory) -> None:
    settings = make_settings("three")
    env = settings_env(settings)
    made = invoke_json(
        env, "services", "agents", "register", "bot-a", "--type", "trader", "-c", "trade", "--json"
    )
    assert made["agent_id"] == "bot-a" and made["capabilities"] == ["trade"]
    invoke(
        env,
        "services",
        "agents",
        "register",
        "bot-b",
        "--type",
        "analyst",
        "--config",
        '{"x": 1}',
        code=0,
    )
    listed = invoke_json(env, "services", "agents", "list", "--json")
    assert [a["agent_id"] for a in listed] == ["bot-a", "bot-b"]
    assert "bot-b" in invoke(env, "services", "agents", "list", code=0).stdout
    low = invoke_json(
        env, "services", "agents", "send", "bot-a", "bot-b", "--payload", '{"n": 1}', "--json"
    )
    high = invoke_json(
        env,
        "services",
        "agents",
        "send",
        "bot-a",
        "bot-b",
        "--payload",
        '{"n": 2}',
        "--priority",
        "3",
        "--type",
        "signal",
        "--json",
    )
    assert low["status"] == "pending"
    peek = invoke_json(env, "services", "agents", "inbox", "bot-b", "--peek", "--json")
    assert {m["message_id"] for m in peek} == {low["message_id"], high["message_id"]}
    claimed = invoke_json(env, "services", "agents", "inbox", "bot-b", "--limit", "1", "--json")
    assert [m["message_id"] for m in claimed] == [high["message_id"]]
    assert claimed[0]["status"] == "delivered"
    acked = invoke_json(env, "services", "agents", "inbox", "bot-b", "--ack", "--json")
    assert [(m["message_id"], m["status"]) for m in acked] == [(low["message_id"], "processed")]
    assert (
        "no pending messages" in invoke(env, "services", "agents", "inbox", "bot-b", code=0).stdout
    )
    done = invoke_json(env, "services", "agents", "ack", high["message_id"], "--json")
    assert done["status"] == "processed"


def test_agents_errors_exit_with_hint_and_write_nothing(make_settings: SettingsFactory) -> None:
    settings = make_settings("three")
    env = settings_env(settings)
    invoke(env, "services", "agents", "register", "bot-a", "--type", "trader", code=0)
    bad_json = invoke(
        env, "services", "agents", "send", "bot-a", "bot-a", "--payload", "{nope", code=5
    )
    assert "error: --payload is not valid JSON" in bad_json.output and "hint:" in bad_json.output
    unknown = invoke(env, "services", "agents", "send", "bot-a", "ghost", "--payload", "{}", code=6)
    assert "ghost" in unknown.output and "hint:" in unknown.output
    invoke(env, "services", "agents", "inbox", "ghost", code=6)
    invoke(env, "services", "agents", "register", "x", "--type", "t", "--config", "[1]", code=5)
    with Stores(settings) as stores:
        assert count_rows(stores.engine(stores.app), A2AMessage) == 0


def test_sentiment_import_cli(make_settings: SettingsFactory, market_data_dir: Path) -> None:
    settings = make_settings("three")
    env = settings_env(settings)
    csv = market_data_dir / "sentiment" / "CRYPTO_FNG_INDEX.csv"
    first = invoke_json(
        env, "services", "sentiment", "import", str(csv), "--symbol", "BTC", "--json"
    )
    assert first["inserted"] == first["rows"] > 2500 and first["source"] == "alternative.me"
    again = invoke_json(env, "services", "sentiment", "import", str(csv), "--json")
    assert again["inserted"] == 0 and again["unchanged"] == first["rows"]
    assert "inserted" in invoke(env, "services", "sentiment", "import", str(csv), code=0).stdout
    invoke(env, "services", "sentiment", "import", str(market_data_dir / "SOURCES.md"), code=5)
    with Stores(settings) as stores:
        assert count_rows(stores.engine(stores.app), SentimentData) == first["rows"]


def test_cache_purge_cli(make_settings: SettingsFactory) -> None:
    settings = make_settings("three")
    env = settings_env(settings)
    with Stores(settings) as stores:
        engine = stores.engine(stores.app)
        cache = Cache(engine)
        cache.set("old", 1, ttl_seconds=60)
        cache.set("fresh", 2, ttl_seconds=60)
        with Session(engine) as session, session.begin():
            session.execute(
                update(CacheEntry)
                .where(CacheEntry.cache_key == "old")
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        purged = invoke_json(env, "services", "cache", "purge", "--json")
        assert purged == {
            "cache_entries": 1,
            "feature_cache": 0,
            "historical_data_cache": 0,
            "total": 1,
        }
        assert count_rows(engine, CacheEntry) == 1
    assert "total" in invoke(env, "services", "cache", "purge", code=0).stdout


def test_code_scan_cli(make_settings: SettingsFactory, tmp_path: Path) -> None:
    env = settings_env(make_settings("three"))
    (tmp_path / "a.py").write_text("def f(x):\n    if x:\n        return 1\n    return 2\n")
    (tmp_path / "b.py").write_text("x = 1\n")
    report = invoke_json(
        env, "services", "code", "scan", str(tmp_path), "--threshold", "1", "--json"
    )
    assert report["files"] == 2 and report["new"] == 2 and report["issues_opened"] == 1
    assert report["most_complex"][0]["path"].endswith("a.py")
    assert report["most_complex"][0]["complexity"] == 2
    again = invoke_json(
        env, "services", "code", "scan", str(tmp_path), "--threshold", "1", "--json"
    )
    assert again["unchanged"] == 2 and again["issues_opened"] == 0
    assert (
        "most complex files"
        in invoke(env, "services", "code", "scan", str(tmp_path), code=0).stdout
    )
    missing = invoke(env, "services", "code", "scan", str(tmp_path / "nope"), code=5)
    assert "not a directory" in missing.output
