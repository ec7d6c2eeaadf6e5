"""Category 2 -- market data: ``market_data``, ``market_data_sources``,
``aggregated_market_data`` and the high-frequency ``time_series``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cryptotrading.models._common import MARKET_LINEAGE, Base, IdMixin, table_args


class MarketData(IdMixin, Base):
    """Current price snapshot of a symbol (one row per observation)."""

    __tablename__ = "market_data"
    __table_args__ = table_args("1.0.0", Index(None, "symbol", "timestamp"))

    symbol: Mapped[str] = mapped_column(String(32))
    price: Mapped[float]
    volume_24h: Mapped[float | None]
    high_24h: Mapped[float | None]
    low_24h: Mapped[float | None]
    change_24h_pct: Mapped[float | None]
    bid: Mapped[float | None]
    ask: Mapped[float | None]
    source: Mapped[str | None] = mapped_column(String(64))
    timestamp: Mapped[datetime]


class MarketDataSource(IdMixin, Base):
    """A quote of one symbol from one source (exchange), as ccxt returned it."""

    __tablename__ = "market_data_sources"
    __table_args__ = table_args(
        "1.0.0", Index(None, "symbol", "timestamp"), Index(None, "source", "symbol", "timestamp")
    )

    source: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    price: Mapped[float]
    bid: Mapped[float | None]
    ask: Mapped[float | None]
    volume_24h: Mapped[float | None]
    liquidity: Mapped[float | None]
    timestamp: Mapped[datetime]
    info: Mapped[dict[str, Any] | None]


class AggregatedMarketData(IdMixin, Base):
    """Cross-exchange aggregate of one symbol at one time."""

    __tablename__ = "aggregated_market_data"
    __table_args__ = table_args("1.0.0", Index(None, "symbol", "timestamp"))

    symbol: Mapped[str] = mapped_column(String(32))
    avg_price: Mapped[float]
    vwap: Mapped[float | None]
    min_price: Mapped[float | None]
    max_price: Mapped[float | None]
    spread_pct: Mapped[float | None]
    total_volume: Mapped[float | None]
    sources_count: Mapped[int]
    stale_excluded: Mapped[int] = mapped_column(default=0)
    outliers_excluded: Mapped[int] = mapped_column(default=0)
    timestamp: Mapped[datetime]


class TimeSeries(Base):
    """One OHLCV candle. ``timestamp`` is the candle open time in epoch milliseconds
    UTC (ccxt convention); prices and volume are float64. The primary key
    ``(symbol, frequency, timestamp, exchange)`` is the spec's
    ``(symbol, frequency, timestamp)`` index and makes re-ingest idempotent.
    SQLite keeps it WITHOUT ROWID (clustered); PostgreSQL partitions by range of
    ``timestamp``."""

    __tablename__ = "time_series"
    __table_args__ = table_args(
        "1.0.0",
        Index(None, "symbol", "timestamp"),
        lineage=MARKET_LINEAGE,
        sqlite_with_rowid=False,
        postgresql_partition_by="RANGE (timestamp)",
    )

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    frequency: Mapped[str] = mapped_column(String(8), primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    exchange: Mapped[str] = mapped_column(String(32), primary_key=True, default="")
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float] = mapped_column(Float)
    ingested_at: Mapped[int] = mapped_column(BigInteger)
