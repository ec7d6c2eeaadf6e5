"""``cryptotrading services ...`` through a local Typer app, on both backends."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer
from sqlalchemy import update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cryptotrading.cli._common import ErrorReportingGroup, State
from cryptotrading.cli.services import services_app
from cryptotrading.db import utcnow
from cryptotrading.models.agents import A2AMessage
from cryptotrading.models.analytics import SentimentData
from cryptotrading.models.caching import CacheEntry
from cryptotrading.services.cache import Cache
from cryptotrading.stores import Stores
from tests.conftest import SettingsFactory, settings_env
from tests.services.helpers import count

app = typer.Typer(cls=ErrorReportingGroup, no_args_is_help=True)


@app.callback()
def _root(ctx: typer.Context) -> None:
    ctx.obj = State()


app.add_typer(services_app, name="services")
runner = CliRunner()


def run(env: dict[str, str], *args: str, code: int = 0) -> Any:
    result = runner.invoke(app, ["services", *args], env=env)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if "--json" in args and code == 0 else result


def test_agents_commands(make_settings: SettingsFactory) -> None:
    settings = make_settings("three")
    env = settings_env(settings)
    made = run(env, "agents", "register", "bot-a", "--type", "trader", "-c", "trade", "--json")
    assert made["agent_id"] == "bot-a" and made["capabilities"] == ["trade"]
    run(env, "agents", "register", "bot-b", "--type", "analyst", "--config", '{"x": 1}')
    listed = run(env, "agents", "list", "--json")
    assert [a["agent_id"] for a in listed] == ["bot-a", "bot-b"]
    assert "bot-b" in run(env, "agents", "list").stdout
    low = run(env, "agents", "send", "bot-a", "bot-b", "--payload", '{"n": 1}', "--json")
    high = run(
        env,
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
    peek = run(env, "agents", "inbox", "bot-b", "--peek", "--json")
    assert {m["message_id"] for m in peek} == {low["message_id"], high["message_id"]}
    claimed = run(env, "agents", "inbox", "bot-b", "--limit", "1", "--json")
    assert [m["message_id"] for m in claimed] == [high["message_id"]]
    assert claimed[0]["status"] == "delivered"
    acked = run(env, "agents", "inbox", "bot-b", "--ack", "--json")
    assert [(m["message_id"], m["status"]) for m in acked] == [(low["message_id"], "processed")]
    assert "no pending messages" in run(env, "agents", "inbox", "bot-b").stdout
    done = run(env, "agents", "ack", high["message_id"], "--json")
    assert done["status"] == "processed"


def test_agents_errors_exit_with_hint_and_write_nothing(make_settings: SettingsFactory) -> None:
    settings = make_settings("three")
    env = settings_env(settings)
    run(env, "agents", "register", "bot-a", "--type", "trader")
    bad_json = run(env, "agents", "send", "bot-a", "bot-a", "--payload", "{nope", code=5)
    assert "error: --payload is not valid JSON" in bad_json.output and "hint:" in bad_json.output
    unknown = run(env, "agents", "send", "bot-a", "ghost", "--payload", "{}", code=6)
    assert "ghost" in unknown.output and "hint:" in unknown.output
    run(env, "agents", "inbox", "ghost", code=6)
    run(env, "agents", "register", "x", "--type", "t", "--config", "[1]", code=5)
    with Stores(settings) as stores:
        assert count(stores.engine(stores.app), A2AMessage) == 0


def test_sentiment_import_cli(make_settings: SettingsFactory, market_data_dir: Path) -> None:
    settings = make_settings("three")
    env = settings_env(settings)
    csv = market_data_dir / "sentiment" / "CRYPTO_FNG_INDEX.csv"
    first = run(env, "sentiment", "import", str(csv), "--symbol", "BTC", "--json")
    assert first["inserted"] == first["rows"] > 2500 and first["source"] == "alternative.me"
    again = run(env, "sentiment", "import", str(csv), "--json")
    assert again["inserted"] == 0 and again["unchanged"] == first["rows"]
    assert "inserted" in run(env, "sentiment", "import", str(csv)).stdout
    run(env, "sentiment", "import", str(market_data_dir / "SOURCES.md"), code=5)
    with Stores(settings) as stores:
        assert count(stores.engine(stores.app), SentimentData) == first["rows"]


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
        purged = run(env, "cache", "purge", "--json")
        assert purged == {
            "cache_entries": 1,
            "feature_cache": 0,
            "historical_data_cache": 0,
            "total": 1,
        }
        assert count(engine, CacheEntry) == 1
    assert "total" in run(env, "cache", "purge").stdout


def test_code_scan_cli(make_settings: SettingsFactory, tmp_path: Path) -> None:
    env = settings_env(make_settings("three"))
    (tmp_path / "a.py").write_text("def f(x):\n    if x:\n        return 1\n    return 2\n")
    (tmp_path / "b.py").write_text("x = 1\n")
    report = run(env, "code", "scan", str(tmp_path), "--threshold", "1", "--json")
    assert report["files"] == 2 and report["new"] == 2 and report["issues_opened"] == 1
    assert report["most_complex"][0]["path"].endswith("a.py")
    assert report["most_complex"][0]["complexity"] == 2
    again = run(env, "code", "scan", str(tmp_path), "--threshold", "1", "--json")
    assert again["unchanged"] == 2 and again["issues_opened"] == 0
    assert "most complex files" in run(env, "code", "scan", str(tmp_path)).stdout
    missing = run(env, "code", "scan", str(tmp_path / "nope"), code=5)
    assert "not a directory" in missing.output
