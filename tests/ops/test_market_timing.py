"""The market store's raw driver calls are timed and recorded as slow queries like
every other store's statements; the scheduled quality pass raises data-quality alerts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from cryptotrading.db import timing
from cryptotrading.market.store import MarketStore
from cryptotrading.models import DataQualityMetric, MonitoringEvent, SystemMetric
from cryptotrading.ops import health, scheduler
from cryptotrading.stores import Stores
from tests.helpers import BINANCE_DIR, SettingsFactory, load_rows


@pytest.fixture
def timed(make_settings: SettingsFactory) -> Iterator[Stores]:
    """Stores whose every statement counts as slow (threshold 0 ms)."""
    with Stores(make_settings("three", slow_query_ms=0)) as opened:
        timing.take_slow_queries(opened.app.url)
        yield opened
        timing.take_slow_queries(opened.app.url)


def _btc(market_data_dir: Path) -> list[list[float]]:
    return load_rows(market_data_dir / BINANCE_DIR / "BTC_USDT-1h.json")


def test_market_reads_and_writes_are_recorded_as_slow_queries(
    timed: Stores, market_data_dir: Path
) -> None:
    market = MarketStore(timed)
    rows = _btc(market_data_dir)
    market.write_ohlcv(rows, symbol="BTC/USDT", timeframe="1h", exchange="binance")
    market.read_ohlcv("BTC/USDT", "1h", start="2021-01-01", end="2021-02-01")
    market.latest("BTC/USDT")
    found = [q for q in timing.buffered_slow_queries() if q.app_url == timed.app.url]
    ours = [q for q in found if q.store == "market" and "time_series" in q.statement]
    kinds = {q.statement.split()[0] for q in ours}
    assert {"write", "read", "latest", "frequencies"} <= kinds
    [write] = [q for q in ours if q.statement.startswith("write")]
    assert write.statement == (
        f"write time_series symbol=BTC/USDT frequency=1h exchange=binance rows={len(rows)}"
    )
    [read] = [q for q in ours if q.statement.startswith("read")]
    assert "timestamp>=1609459200000 timestamp<1612137600000" in read.statement
    assert all(q.milliseconds >= 0 for q in ours)

    listed = health.check(timed).slow_queries  # shown before they are stored
    assert any(q["store"] == "market" and q["statement"] == write.statement for q in listed)
    health.record(timed, health.check(timed))  # stored like every other slow query
    with timed.engine(timed.app).connect() as connection:
        stored = connection.execute(
            select(SystemMetric.tags).where(
                SystemMetric.metric_name == timing.SLOW_QUERY_METRIC,
                SystemMetric.component == "store:market",
            )
        ).scalars()
        statements = {tags["statement"] for tags in stored}
    assert write.statement in statements


def test_fast_market_calls_are_not_recorded(stores: Stores, market_data_dir: Path) -> None:
    timing.take_slow_queries(stores.app.url)
    market = MarketStore(stores)  # default threshold: 500 ms
    market.write_ohlcv(_btc(market_data_dir)[:50], symbol="BTC/USDT", timeframe="1h")
    market.latest("BTC/USDT")
    assert not [q for q in timing.take_slow_queries(stores.app.url) if "time_series" in q.statement]


def test_timer_records_a_failed_call_too() -> None:
    timer = timing.StatementTimer("market", 0.0, "sqlite:///nowhere-timer.db")
    with pytest.raises(ZeroDivisionError), timer.timed("read time_series   symbol=X"):
        _ = 1 / 0
    [query] = timing.take_slow_queries("sqlite:///nowhere-timer.db")
    assert query.store == "market" and query.statement == "read time_series symbol=X"


def test_quality_job_raises_alerts_without_a_manual_run(
    stores: Stores, market_data_dir: Path
) -> None:
    rows = _btc(market_data_dir)
    gapped = rows[:1000] + rows[1010:]  # ten candles missing
    MarketStore(stores).write_ohlcv(gapped, symbol="BTC/USDT", timeframe="1h", exchange="binance")
    results = {r.job: r for r in scheduler.run_due(stores, only=["quality", "health"])}
    quality = results["quality"]
    assert quality.status == "ok", quality
    assert quality.detail["series"] == 1 and quality.detail["poor"] == 1
    assert quality.detail["poor_series"] == ["binance BTC/USDT 1h"]
    with stores.engine(stores.app).connect() as connection:
        measured = connection.execute(select(DataQualityMetric.gaps_count)).scalars().all()
        alerts = (
            connection.execute(
                select(MonitoringEvent.message).where(MonitoringEvent.event_type == "data_quality")
            )
            .scalars()
            .all()
        )
    [gaps] = measured  # the exchange's own gaps (six) and ours
    assert gaps == 7
    assert results["health"].status == "failed"  # the alert makes the store unhealthy
    assert any("BTC/USDT" in message and f"{gaps} gaps" in message for message in alerts)
