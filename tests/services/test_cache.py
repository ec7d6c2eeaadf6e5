"""The TTL cache, feature cache and memoised historical queries on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from cryptotrading.common.clock import utcnow
from cryptotrading.errors import ValidationError
from cryptotrading.models.caching import CacheEntry, FeatureCache, HistoricalDataCache
from cryptotrading.services.cache import Cache, query_hash
from tests.helpers import count_rows


def expire(engine: Engine, model: type) -> None:
    """Move every row of *model* into the past (instead of sleeping)."""
    with Session(engine) as session, session.begin():
        session.execute(update(model).values(expires_at=utcnow() - timedelta(seconds=1)))


def test_get_set_delete_and_hits(app_engine: Engine) -> None:
    cache = Cache(app_engine)
    assert cache.get("price:BTC") is None and cache.get("price:BTC", 0) == 0
    cache.set("price:BTC", {"last": 42000.5, "ts": 1}, ttl_seconds=60)
    assert cache.get("price:BTC") == {"last": 42000.5, "ts": 1}
    assert cache.get("price:BTC") == {"last": 42000.5, "ts": 1}
    entry = cache.stats("price:BTC")
    assert entry is not None and entry.hit_count == 2 and entry.ttl_seconds == 60
    assert entry.expires_at is not None and entry.expires_at > utcnow()
    cache.set("price:BTC", [1, 2, 3])  # overwrite: new value, no TTL, hits reset
    entry = cache.stats("price:BTC")
    assert entry is not None and entry.expires_at is None and entry.hit_count == 0
    assert cache.get("price:BTC") == [1, 2, 3]
    cache.set("flag", None)
    assert cache.get("flag", "missing") is None  # a stored null is not a miss
    assert cache.delete("price:BTC") is True and cache.delete("price:BTC") is False
    assert count_rows(app_engine, CacheEntry) == 1


def test_expired_entries_are_misses_and_purged(app_engine: Engine) -> None:
    cache = Cache(app_engine, default_ttl=300)
    cache.set("a", 1)
    cache.set("b", 2, ttl_seconds=10)
    cache.set_feature("rsi", "BTC/USDT", {"v": [1.0, 2.0]}, version="1")
    cache.historical_query(["daily", "BTC"], lambda: [1, 2])
    expire(app_engine, CacheEntry)
    expire(app_engine, FeatureCache)
    assert cache.get("a") is None
    assert cache.get_feature("rsi", "BTC/USDT") is None
    cache.set("c", 3, ttl_seconds=3600)
    report = cache.purge_expired()
    assert (report.cache_entries, report.feature_cache, report.historical_data_cache) == (2, 1, 0)
    assert report.total == 3
    assert count_rows(app_engine, CacheEntry) == 1 and cache.get("c") == 3
    assert cache.purge_expired().total == 0


def test_bad_input_writes_nothing(app_engine: Engine) -> None:
    cache = Cache(app_engine)
    with pytest.raises(ValidationError, match="JSON"):
        cache.set("k", {"when": utcnow()})
    with pytest.raises(ValidationError, match="JSON"):
        cache.set("k", float("nan"))
    with pytest.raises(ValidationError, match="ttl"):
        cache.set("k", 1, ttl_seconds=0)
    with pytest.raises(ValidationError, match="cache key"):
        cache.set("", 1)
    with pytest.raises(ValidationError, match="longer"):
        cache.set("k" * 256, 1)
    with pytest.raises(ValidationError, match="feature value"):
        cache.set_feature("rsi", "BTC", [1.0])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="ttl"):
        Cache(app_engine, default_ttl=-1)
    assert count_rows(app_engine, CacheEntry) == 0 and count_rows(app_engine, FeatureCache) == 0


def test_feature_cache_versions(app_engine: Engine) -> None:
    cache = Cache(app_engine)
    cache.set_feature("momentum", "ETH/USDT", {"rsi": 55.0}, version="v1")
    cache.set_feature("momentum", "ETH/USDT", {"rsi": 60.0}, version="v2")
    assert cache.get_feature("momentum", "ETH/USDT") == {"rsi": 60.0}
    assert cache.get_feature("momentum", "ETH/USDT", version="v1") is None
    assert count_rows(app_engine, FeatureCache) == 1


def test_historical_query_memoises_by_hash(app_engine: Engine) -> None:
    cache = Cache(app_engine)
    calls: list[int] = []

    def loader() -> list[dict[str, float]]:
        calls.append(1)
        return [{"close": 1.5}, {"close": 2.5}]

    key = {"symbol": "BTC/USDT", "range": ["2021-01-01", "2021-02-01"], "tf": "1d"}
    first = cache.historical_query(key, loader, ttl_seconds=3600)
    same_key_reordered = {"tf": "1d", "range": ["2021-01-01", "2021-02-01"], "symbol": "BTC/USDT"}
    second = cache.historical_query(same_key_reordered, loader)
    assert first == second == [{"close": 1.5}, {"close": 2.5}] and len(calls) == 1
    with Session(app_engine) as session:
        row = session.query(HistoricalDataCache).one()
        assert row.query_hash == query_hash(key) and len(row.query_hash) == 64
        assert row.row_count == 2
    expire(app_engine, HistoricalDataCache)
    cache.historical_query(key, loader)
    assert len(calls) == 2 and count_rows(app_engine, HistoricalDataCache) == 1
    cache.historical_query(["other"], lambda: 7)
    assert cache.historical_query(["other"], loader) == 7 and len(calls) == 2
    with pytest.raises(ValidationError, match="loader result"):
        cache.historical_query(["bad"], lambda: {1, 2})
    with pytest.raises(ValidationError, match="key parts"):
        cache.historical_query([object()], loader)
    assert count_rows(app_engine, HistoricalDataCache) == 2
