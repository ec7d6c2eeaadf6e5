"""Category 8 -- caches in the app store.

* :class:`Cache` -- a JSON key-value cache with time to live on ``cache_entries``:
  :meth:`~Cache.get` (counts hits), :meth:`~Cache.set` (upsert), :meth:`~Cache.delete`,
  :meth:`~Cache.purge_expired` (all three cache tables), :meth:`~Cache.set_feature` /
  :meth:`~Cache.get_feature` on ``feature_cache``, and :meth:`~Cache.historical_query`,
  which memoises a query result in ``historical_data_cache`` under the sha256 of its
  key parts.

Expired entries are never returned; they are removed by :meth:`~Cache.purge_expired`
(or overwritten by the next ``set``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, delete, or_, select, update

from cryptotrading.common.checks import integer, json_value, optional_text, required_document, text
from cryptotrading.common.clock import utcnow
from cryptotrading.db import unit_of_work
from cryptotrading.models.caching import CacheEntry, FeatureCache, HistoricalDataCache
from cryptotrading.services._common import WHERE, read_session
from cryptotrading.services._upsert import upsert

_MISSING: Any = object()


@dataclass(frozen=True)
class PurgeReport:
    """Expired rows deleted from each cache table."""

    cache_entries: int
    feature_cache: int
    historical_data_cache: int

    @property
    def total(self) -> int:
        return self.cache_entries + self.feature_cache + self.historical_data_cache


def query_hash(key_parts: Any) -> str:
    """The sha256 (hex) of *key_parts* as canonical JSON (sorted keys)."""
    canonical = json.dumps(
        json_value(key_parts, "key parts"), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _unexpired(model: Any, now: datetime) -> ColumnElement[bool]:
    """*model*'s rows without an expiry or expiring after *now*."""
    return or_(model.expires_at.is_(None), model.expires_at > now)


class Cache:
    """TTL caches on the app store's engine."""

    def __init__(self, engine: Engine, *, default_ttl: int | None = None) -> None:
        self.engine = engine
        self.default_ttl = None if default_ttl is None else integer(default_ttl, "ttl", low=1)

    def _expiry(self, ttl_seconds: int | None) -> tuple[int | None, datetime | None]:
        ttl = self.default_ttl if ttl_seconds is None else integer(ttl_seconds, "ttl", low=1)
        return ttl, None if ttl is None else utcnow() + timedelta(seconds=ttl)

    def _put(
        self, model: Any, row: dict[str, Any], *, keys: Sequence[str], update: Sequence[str]
    ) -> None:
        """Upsert one *row* of *model*'s table in a transaction of its own."""
        with unit_of_work(self.engine, WHERE) as session:
            upsert(session, model.__table__, [row], keys=keys, update=update)

    # ---------------------------------------------------------------- key-value

    def get(self, key: str, default: Any = None) -> Any:
        """The unexpired value of *key* (its ``hit_count`` incremented), else *default*."""
        now = utcnow()
        with unit_of_work(self.engine, WHERE) as session:
            entry = session.scalar(
                select(CacheEntry).where(
                    CacheEntry.cache_key == key,
                    _unexpired(CacheEntry, now),
                )
            )
            if entry is None:
                return default
            session.execute(
                update(CacheEntry)
                .where(CacheEntry.id == entry.id)
                .values(hit_count=CacheEntry.hit_count + 1)
            )
            return entry.value

    def set(self, key: str, value: Any, *, ttl_seconds: int | None = None) -> None:
        """Store *value* (any JSON value) under *key*, for *ttl_seconds* (or the
        default TTL; forever when both are None)."""
        key = text(key, "cache key", limit=255)
        value = json_value(value, "cache value")
        ttl, expires_at = self._expiry(ttl_seconds)
        now = utcnow()
        row = {
            "cache_key": key,
            "value": value,
            "ttl_seconds": ttl,
            "expires_at": expires_at,
            "hit_count": 0,
            "created_at": now,
            "updated_at": now,
        }
        self._put(
            CacheEntry,
            row,
            keys=("cache_key",),
            update=("value", "ttl_seconds", "expires_at", "hit_count", "updated_at"),
        )

    def delete(self, key: str) -> bool:
        """Remove *key*; True when it existed."""
        with unit_of_work(self.engine, WHERE) as session:
            result = session.execute(delete(CacheEntry).where(CacheEntry.cache_key == key))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def stats(self, key: str) -> CacheEntry | None:
        """The stored entry of *key* (expired or not), for inspection."""
        with read_session(self.engine) as session:
            return session.scalar(select(CacheEntry).where(CacheEntry.cache_key == key))

    def purge_expired(self) -> PurgeReport:
        """Delete expired rows from cache_entries, feature_cache and
        historical_data_cache in one transaction."""
        now = utcnow()
        with unit_of_work(self.engine, WHERE) as session:
            counts = [
                session.execute(delete(model).where(model.expires_at <= now)).rowcount  # type: ignore[attr-defined]
                for model in (CacheEntry, FeatureCache, HistoricalDataCache)
            ]
        return PurgeReport(*(int(n) for n in counts))

    # ----------------------------------------------------------------- features

    def set_feature(
        self,
        feature_key: str,
        symbol: str,
        value: dict[str, Any],
        *,
        version: str | None = None,
        ttl_seconds: int | None = None,
    ) -> None:
        """Store a feature vector (a JSON object) of *symbol* (upsert)."""
        row = {
            "feature_key": text(feature_key, "feature key", limit=255),
            "symbol": text(symbol, "symbol", limit=32),
            "feature_value": required_document(value, "feature value"),
            "feature_version": optional_text(version, "feature version", limit=32),
            "expires_at": self._expiry(ttl_seconds)[1],
            "created_at": utcnow(),
        }
        self._put(
            FeatureCache,
            row,
            keys=("feature_key", "symbol"),
            update=("feature_value", "feature_version", "expires_at", "created_at"),
        )

    def get_feature(
        self, feature_key: str, symbol: str, *, version: str | None = None
    ) -> dict[str, Any] | None:
        """The unexpired feature vector (of *version*, when given), else None."""
        query = select(FeatureCache).where(
            FeatureCache.feature_key == feature_key,
            FeatureCache.symbol == symbol,
            _unexpired(FeatureCache, utcnow()),
        )
        if version is not None:
            query = query.where(FeatureCache.feature_version == version)
        with read_session(self.engine) as session:
            row = session.scalar(query)
            return None if row is None else row.feature_value

    # --------------------------------------------------------- historical queries

    def historical_query(
        self,
        key_parts: Sequence[Any] | dict[str, Any],
        loader: Callable[[], Any],
        *,
        ttl_seconds: int | None = None,
    ) -> Any:
        """The result of *loader* for *key_parts*, memoised in
        ``historical_data_cache`` under ``sha256(canonical JSON of key_parts)``.

        *loader* runs only on a miss (or after expiry) and must return a JSON value;
        it runs outside any transaction. Concurrent misses both load; the last write wins.
        """
        digest = query_hash(key_parts)
        now = utcnow()
        with read_session(self.engine) as session:
            cached = session.scalar(
                select(HistoricalDataCache).where(
                    HistoricalDataCache.query_hash == digest,
                    _unexpired(HistoricalDataCache, now),
                )
            )
            if cached is not None:
                return cached.result_data["value"]
        result = json_value(loader(), "loader result")
        row = {
            "query_hash": digest,
            "query_text": json.dumps(key_parts, sort_keys=True),
            "result_data": {"value": result},
            "row_count": len(result) if isinstance(result, list | dict) else None,
            "expires_at": self._expiry(ttl_seconds)[1],
            "created_at": utcnow(),
        }
        self._put(
            HistoricalDataCache,
            row,
            keys=("query_hash",),
            update=("query_text", "result_data", "row_count", "expires_at", "created_at"),
        )
        return result
