"""Category 6 -- factors and analytics: factor definitions and values, on-chain,
sentiment and macro series."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cryptotrading.models._common import Base, CreatedAtMixin, IdMixin, TimestampMixin, table_args


class FactorDefinition(IdMixin, TimestampMixin, Base):
    """Metadata of a factor: how it is computed and over which lookback."""

    __tablename__ = "factor_definitions"
    __table_args__ = table_args("1.5.0")

    name: Mapped[str] = mapped_column(String(128), unique=True)
    category: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    formula: Mapped[str | None] = mapped_column(Text)
    lookback_hours: Mapped[int | None]
    parameters: Mapped[dict[str, Any] | None]
    is_active: Mapped[bool] = mapped_column(default=True)


class FactorData(IdMixin, CreatedAtMixin, Base):
    """A computed factor value of a symbol at a time."""

    __tablename__ = "factor_data"
    __table_args__ = table_args("1.5.0", UniqueConstraint("symbol", "factor_name", "timestamp"))

    symbol: Mapped[str] = mapped_column(String(32))
    factor_name: Mapped[str] = mapped_column(
        String(128), ForeignKey("factor_definitions.name", ondelete="CASCADE"), index=True
    )
    timestamp: Mapped[datetime]
    value: Mapped[float]
    quality_score: Mapped[float | None]
    meta: Mapped[dict[str, Any] | None]


class OnchainData(IdMixin, CreatedAtMixin, Base):
    """Blockchain activity metrics of an asset."""

    __tablename__ = "onchain_data"
    __table_args__ = table_args("1.5.0", Index(None, "symbol", "timestamp"))

    symbol: Mapped[str] = mapped_column(String(32))
    timestamp: Mapped[datetime]
    active_addresses: Mapped[int | None]
    transaction_volume: Mapped[float | None]
    transaction_count: Mapped[int | None]
    hash_rate: Mapped[float | None]
    exchange_inflow: Mapped[float | None]
    exchange_outflow: Mapped[float | None]
    source: Mapped[str | None] = mapped_column(String(64))


class SentimentData(IdMixin, CreatedAtMixin, Base):
    """Social sentiment and the Fear & Greed index."""

    __tablename__ = "sentiment_data"
    __table_args__ = table_args("1.5.0", Index(None, "symbol", "timestamp"))

    symbol: Mapped[str] = mapped_column(String(32))
    timestamp: Mapped[datetime]
    social_volume: Mapped[float | None]
    sentiment_score: Mapped[float | None]
    fear_greed_index: Mapped[int | None]
    source: Mapped[str | None] = mapped_column(String(64))
    meta: Mapped[dict[str, Any] | None]


class MacroData(IdMixin, CreatedAtMixin, Base):
    """Macro indicators and correlations with traditional markets."""

    __tablename__ = "macro_data"
    __table_args__ = table_args("1.5.0", Index(None, "symbol", "timestamp"))

    symbol: Mapped[str] = mapped_column(String(32))
    timestamp: Mapped[datetime]
    spy_correlation: Mapped[float | None]
    dxy_correlation: Mapped[float | None]
    gold_correlation: Mapped[float | None]
    interest_rates: Mapped[float | None]
    inflation_rate: Mapped[float | None]
    vix: Mapped[float | None]
    source: Mapped[str | None] = mapped_column(String(64))
