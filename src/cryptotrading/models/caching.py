"""Category 8 -- caches: general entries, ML features, historical query results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cryptotrading.models._common import Base, CreatedAtMixin, IdMixin, TimestampMixin, table_args


class CacheEntry(IdMixin, TimestampMixin, Base):
    """A general key-value cache entry with a time to live."""

    __tablename__ = "cache_entries"
    __table_args__ = table_args("2.0.0")

    cache_key: Mapped[str] = mapped_column(String(255), unique=True)
    value: Mapped[dict[str, Any] | None]
    ttl_seconds: Mapped[int | None]
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    hit_count: Mapped[int] = mapped_column(default=0)


class FeatureCache(IdMixin, CreatedAtMixin, Base):
    """A computed ML feature vector of a symbol."""

    __tablename__ = "feature_cache"
    __table_args__ = table_args("2.0.0", UniqueConstraint("feature_key", "symbol"))

    feature_key: Mapped[str] = mapped_column(String(255))
    symbol: Mapped[str] = mapped_column(String(32))
    feature_value: Mapped[dict[str, Any]]
    feature_version: Mapped[str | None] = mapped_column(String(32))
    expires_at: Mapped[datetime | None] = mapped_column(index=True)


class HistoricalDataCache(IdMixin, CreatedAtMixin, Base):
    """The result of an expensive historical query, keyed by its hash."""

    __tablename__ = "historical_data_cache"
    __table_args__ = table_args("2.0.0")

    query_hash: Mapped[str] = mapped_column(String(64), unique=True)
    query_text: Mapped[str | None] = mapped_column(Text)
    result_data: Mapped[dict[str, Any]]
    row_count: Mapped[int | None]
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
