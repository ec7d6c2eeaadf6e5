"""``cryptotrading services ...`` through a local Typer app, on both backends."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session

from cryptotrading.common.clock import utcnow
from cryptotrading.models.analytics import SentimentData
from cryptotrading.models.caching import CacheEntry
from cryptotrading.services.cache import Cache
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, count_rows, invoke, invoke_json, settings_env


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
