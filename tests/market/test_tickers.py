"""Tickers per source and the cross-exchange aggregate, from the recorded ccxt
responses of p2b, Bitstamp and Coinbase Exchange (BTC/USDT, 2024-03-13 11:10 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cryptotrading.db.session import unit_of_work
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.market.tickers import aggregate, fetch_and_store, store_tickers
from cryptotrading.models.market import AggregatedMarketData, MarketData, MarketDataSource
from cryptotrading.stores import Stores
from tests.helpers import count_rows
from tests.market.recorded import recorded_exchange, static_cases

EXCHANGES = ("p2b", "bitstamp", "coinbaseexchange")
RECORDED_AT = datetime(2024, 3, 13, 11, 10, 50, tzinfo=UTC)
NOW = datetime(2024, 3, 13, 11, 12, tzinfo=UTC)


def _recorded_ticker_exchange(market_data_dir: Path, exchange_id: str) -> Any:
    case = static_cases(market_data_dir, exchange_id)["fetchTicker"][0]
    return recorded_exchange(exchange_id, lambda path, query: case["httpResponse"]), case


def test_parsed_by_ccxt_stored_and_aggregated(stores: Stores, market_data_dir: Path) -> None:
    parsed = {}
    for exchange_id in EXCHANGES:
        exchange, case = _recorded_ticker_exchange(market_data_dir, exchange_id)
        ticker = exchange.fetch_ticker("BTC/USDT")
        for key in ("last", "bid", "ask", "baseVolume", "timestamp"):
            assert ticker[key] == case["parsedResponse"][key], (exchange_id, key)
        store_tickers(stores, exchange_id, [ticker], received_at=RECORDED_AT)
        parsed[exchange_id] = ticker
    assert (
        count_rows(stores.engine(stores.app), MarketDataSource)
        == count_rows(stores.engine(stores.app), MarketData)
        == 3
    )
    result = aggregate(stores, "BTC/USDT", now=NOW)
    prices = [parsed[e]["last"] for e in EXCHANGES]
    volumes = [parsed[e]["baseVolume"] for e in EXCHANGES]
    assert result.sources_count == 3 and result.sources == sorted(EXCHANGES)
    assert (result.stale_excluded, result.outliers_excluded) == (0, 0)
    assert result.avg_price == pytest.approx(sum(prices) / 3)
    assert result.vwap == pytest.approx(
        sum(p * v for p, v in zip(prices, volumes, strict=True)) / sum(volumes)
    )
    assert result.spread_pct == pytest.approx((max(prices) - min(prices)) / result.avg_price * 100)
    assert result.total_volume == pytest.approx(sum(volumes))
    with unit_of_work(stores.engine(stores.app)) as session:
        row = session.scalars(select(AggregatedMarketData)).one()
        assert row.sources_count == 3 and row.avg_price == pytest.approx(result.avg_price)
        snapshot = session.scalars(select(MarketData).where(MarketData.source == "bitstamp")).one()
        assert snapshot.change_24h_pct == pytest.approx(parsed["bitstamp"]["percentage"])
        assert snapshot.high_24h == 73656


def test_stale_and_outlier_quotes_excluded(stores: Stores, market_data_dir: Path) -> None:
    tickers = {
        e: static_cases(market_data_dir, e)["fetchTicker"][0]["parsedResponse"] for e in EXCHANGES
    }
    for exchange_id, ticker in tickers.items():
        store_tickers(stores, exchange_id, [ticker], received_at=RECORDED_AT)
    # a fourth source quoting 20 % off (a broken feed) and a fifth, an hour old
    store_tickers(
        stores,
        "brokenfeed",
        [{**tickers["p2b"], "last": tickers["p2b"]["last"] * 1.2}],
        received_at=RECORDED_AT,
    )
    store_tickers(stores, "slowfeed", [tickers["bitstamp"]], received_at=RECORDED_AT)
    old = {
        **tickers["coinbaseexchange"],
        "timestamp": int((NOW - timedelta(hours=1)).timestamp() * 1000),
    }
    store_tickers(stores, "oldfeed", [old])
    result = aggregate(stores, "BTC/USDT", now=NOW, max_age=timedelta(minutes=5), outlier_pct=2.0)
    assert result.stale_excluded == 1 and result.outliers_excluded == 1
    assert result.sources_count == 4 and "brokenfeed" not in result.sources
    assert result.max_price < tickers["p2b"]["last"] * 1.01
    late = aggregate(
        stores, "BTC/USDT", now=NOW + timedelta(minutes=30), max_age=timedelta(hours=2)
    )
    assert late.stale_excluded == 0 and late.sources_count == 5  # median rule: 20 % > 5 %
    with pytest.raises(ValidationError, match="older than"):
        aggregate(stores, "BTC/USDT", now=NOW + timedelta(days=1))
    with pytest.raises(NotFoundError, match="no quotes stored for ETH/USDT"):
        aggregate(stores, "ETH/USDT", now=NOW)


def test_newest_quote_per_source_wins(stores: Stores, market_data_dir: Path) -> None:
    ticker = static_cases(market_data_dir, "bitstamp")["fetchTicker"][0]["parsedResponse"]
    store_tickers(stores, "bitstamp", [ticker])
    newer = {**ticker, "timestamp": ticker["timestamp"] + 60_000, "last": 73300.0}
    store_tickers(stores, "bitstamp", [newer])
    result = aggregate(
        stores, "BTC/USDT", now=datetime.fromtimestamp(newer["timestamp"] / 1000, UTC)
    )
    assert result.sources_count == 1 and result.avg_price == 73300.0 and result.spread_pct == 0.0


def test_bad_tickers_write_nothing(stores: Stores, market_data_dir: Path) -> None:
    good = static_cases(market_data_dir, "bitstamp")["fetchTicker"][0]["parsedResponse"]
    for bad in (
        {**good, "last": None, "close": None},
        {**good, "bid": float("nan")},
        {**good, "symbol": None},
    ):
        with pytest.raises(ValidationError, match="nothing was written"):
            store_tickers(stores, "bitstamp", [good, bad])
    with pytest.raises(ValidationError, match="invalid source"):
        store_tickers(stores, "", [good])
    assert (
        count_rows(stores.engine(stores.app), MarketDataSource)
        == count_rows(stores.engine(stores.app), MarketData)
        == 0
    )


def test_fetch_and_store_through_ccxt(stores: Stores, market_data_dir: Path) -> None:
    exchanges = [_recorded_ticker_exchange(market_data_dir, e)[0] for e in EXCHANGES]
    stored = fetch_and_store(stores, exchanges, ["BTC/USDT"])
    assert stored == {e: ["BTC/USDT"] for e in EXCHANGES}
    with pytest.raises(ValidationError, match="does not list"):
        fetch_and_store(stores, exchanges[:1], ["DOGE/EUR"])
    assert count_rows(stores.engine(stores.app), MarketDataSource) == 3


def test_aggregate_and_download_cli_errors(make_settings: Any, market_data_dir: Path) -> None:
    from tests.helpers import invoke, invoke_json

    settings = make_settings("three")
    with Stores(settings) as opened:
        for exchange_id in EXCHANGES:
            ticker = static_cases(market_data_dir, exchange_id)["fetchTicker"][0]["parsedResponse"]
            store_tickers(opened, exchange_id, [{**ticker, "timestamp": None}])
    result = invoke_json(settings, "market", "aggregate", "BTC/USDT", "--json")
    assert result["sources_count"] == 3 and result["symbol"] == "BTC/USDT"
    assert set(result) >= {"avg_price", "vwap", "spread_pct", "stale_excluded", "outliers_excluded"}
    missing = invoke(settings, "market", "aggregate", "ETH/USDT")
    assert missing.exit_code == 6 and "no quotes stored" in missing.stderr
    unknown = invoke(
        settings, "market", "download", "-e", "nosuch", "-s", "BTC/USDT", "--since", "2021-01-01"
    )
    assert unknown.exit_code == 5 and "unknown exchange" in unknown.stderr
    backwards = invoke(
        settings, "market", "download", "-e", "bitstamp", "-s", "BTC/USDT",
        "--since", "2021-02-01", "--until", "2021-01-01",
    )  # fmt: skip
    assert backwards.exit_code == 5 and "not after" in backwards.stderr
    assert invoke_json(settings, "market", "list", "--json") == []
