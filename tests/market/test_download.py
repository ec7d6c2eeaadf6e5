"""ccxt download with resume, retries and rate limit, offline: the real ccxt bitstamp
class requests pages that are served from the real Binance 1h candles."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import ccxt
import pytest

from cryptotrading.errors import CryptotradingError, ValidationError
from cryptotrading.market import MarketStore
from cryptotrading.market.download import download_ohlcv, make_exchange
from cryptotrading.market.jobs import job_status
from tests.helpers import load_rows
from tests.market.recorded import bitstamp_ohlc_route, recorded_exchange, static_cases

SINCE = "2020-12-01"
UNTIL = "2021-03-01"  # 90 days = 2160 hourly candles minus the outage hours


@pytest.fixture
def candles(binance_dir: Path) -> list[list[Any]]:
    return load_rows(binance_dir / "BTC_USDT-1h.json")


def _expected(candles: list[list[Any]]) -> list[list[Any]]:
    return [row for row in candles if 1606780800000 <= row[0] < 1614556800000]


def test_route_matches_the_recorded_response(market_data_dir: Path) -> None:
    """The served wire format is the one ccxt recorded: parsing it gives ccxt's result."""
    case = static_cases(market_data_dir, "bitstamp")["fetchOHLCV"][0]
    exchange = recorded_exchange("bitstamp", lambda path, query: case["httpResponse"])
    assert exchange.fetch_ohlcv(*case["input"]) == case["parsedResponse"]
    row = case["parsedResponse"][0]
    served = bitstamp_ohlc_route([row])("/api/v2/ohlc/btcusdt/", {"step": "3600", "start": "0"})
    assert served == case["httpResponse"] | {"data": served["data"]}
    assert (
        served["data"]["ohlc"][0]["timestamp"]
        == case["httpResponse"]["data"]["ohlc"][0]["timestamp"]
    )


def test_download_pages_and_records_job(market: MarketStore, candles: list[list[Any]]) -> None:
    exchange = recorded_exchange("bitstamp", bitstamp_ohlc_route(candles), rateLimit=1)
    seen: list[float] = []
    result = download_ohlcv(
        market, exchange, symbol="BTC/USDT", timeframe="1h", since=SINCE, until=UNTIL,
        limit=500, progress=lambda rows, pct: seen.append(pct),
    )  # fmt: skip
    expected = _expected(candles)
    assert (result.rows, result.changed, result.resumed_from) == (
        len(expected),
        len(expected),
        None,
    )
    assert result.pages == len(exchange.calls) == 5  # stops at --until, no empty request
    stored = market.read_ohlcv("BTC/USDT", "1h", exchange="bitstamp", as_="numpy")
    assert stored["timestamp"].tolist() == [row[0] for row in expected]
    assert stored["close"].tolist() == [row[4] for row in expected]
    assert seen == sorted(seen) and seen[-1] == pytest.approx(100.0, abs=0.1)
    job = job_status(market.stores, result.job_id)
    assert job["status"] == "completed" and job["rows_processed"] == len(expected)
    assert job["params"]["cursor"] == expected[-1][0] + 3_600_000
    assert job["source"] == "bitstamp" and job["timeframe"] == "1h"


def test_interrupted_download_resumes_from_newest(
    market: MarketStore, candles: list[list[Any]]
) -> None:
    def outage(number: int, query: dict[str, str]) -> None:
        if number == 4:
            raise ccxt.ExchangeError("bitstamp: maintenance")

    first = recorded_exchange("bitstamp", bitstamp_ohlc_route(candles, fail=outage), rateLimit=1)
    with pytest.raises(CryptotradingError, match="maintenance") as info:
        download_ohlcv(
            market, first, symbol="BTC/USDT", timeframe="1h", since=SINCE, until=UNTIL, limit=500
        )
    assert "resumes" in info.value.hint
    kept = market.read_ohlcv("BTC/USDT", "1h", exchange="bitstamp", as_="numpy")
    expected = _expected(candles)
    done = len(kept)
    assert 1400 < done < 1500  # three committed pages of 500 hours (with outage gaps)
    assert kept["timestamp"].tolist() == [row[0] for row in expected[:done]]
    newest = int(kept["timestamp"][-1])

    second = recorded_exchange("bitstamp", bitstamp_ohlc_route(candles), rateLimit=1)
    result = download_ohlcv(
        market, second, symbol="BTC/USDT", timeframe="1h", since=SINCE, until=UNTIL, limit=500
    )
    assert result.resumed_from == newest
    assert f"start={newest // 1000}" in second.calls[0]
    assert result.rows == len(expected) - done + 1 and result.changed == len(expected) - done
    stored = market.read_ohlcv("BTC/USDT", "1h", exchange="bitstamp", as_="numpy")
    assert stored["timestamp"].tolist() == [row[0] for row in expected]
    from sqlalchemy import select

    from cryptotrading.db.session import unit_of_work
    from cryptotrading.models.quality import DataIngestionJob

    with unit_of_work(market.stores.engine(market.stores.app)) as session:
        jobs = session.scalars(select(DataIngestionJob).order_by(DataIngestionJob.id)).all()
        assert [j.status for j in jobs] == ["failed", "completed"]
        assert jobs[0].rows_processed == done and "maintenance" in (jobs[0].error_message or "")
        assert jobs[0].progress_percentage < 100


def test_network_errors_retried_with_backoff(market: MarketStore, candles: list[list[Any]]) -> None:
    def flaky(number: int, query: dict[str, str]) -> None:
        if number in (2, 3):
            raise ccxt.RequestTimeout("bitstamp GET timed out")

    exchange = recorded_exchange("bitstamp", bitstamp_ohlc_route(candles, fail=flaky), rateLimit=1)
    pauses: list[float] = []
    result = download_ohlcv(
        market, exchange, symbol="BTC/USDT", timeframe="1h", since=SINCE, until=UNTIL,
        backoff=0.5, sleep=pauses.append,
    )  # fmt: skip
    assert pauses == [0.5, 1.0]
    assert result.rows == len(_expected(candles))

    def down(number: int, query: dict[str, str]) -> None:
        raise ccxt.NetworkError("connection refused")

    dead = recorded_exchange("bitstamp", bitstamp_ohlc_route(candles, fail=down), rateLimit=1)
    pauses.clear()
    with pytest.raises(ValidationError, match="does not list ETH/USDT"):
        download_ohlcv(market, dead, symbol="ETH/USDT", timeframe="1h", since=SINCE)
    with pytest.raises(CryptotradingError, match="after 3 retries"):
        download_ohlcv(
            market,
            dead,
            symbol="BTC/USDT",
            timeframe="1h",
            since=SINCE,
            retries=3,
            sleep=pauses.append,
        )
    assert pauses == [1.0, 2.0, 4.0]


def test_rate_limit_is_honoured(market: MarketStore, candles: list[list[Any]]) -> None:
    exchange = recorded_exchange("bitstamp", bitstamp_ohlc_route(candles), rateLimit=100)
    began = time.monotonic()
    result = download_ohlcv(
        market, exchange, symbol="BTC/USDT", timeframe="1h", since=SINCE, until=UNTIL, limit=500
    )
    elapsed = time.monotonic() - began
    assert len(exchange.calls) == result.pages == 5
    assert elapsed >= 0.1 * (len(exchange.calls) - 1) * 0.9  # ccxt's throttle spaced them


def test_download_bad_arguments(market: MarketStore, candles: list[list[Any]]) -> None:
    exchange = recorded_exchange("bitstamp", bitstamp_ohlc_route(candles))
    with pytest.raises(ValidationError, match="not after"):
        download_ohlcv(
            market, exchange, symbol="BTC/USDT", timeframe="1h", since=UNTIL, until=SINCE
        )
    with pytest.raises(ValidationError, match="unknown timeframe"):
        download_ohlcv(market, exchange, symbol="BTC/USDT", timeframe="1x", since=SINCE)
    with pytest.raises(ValidationError, match="unknown exchange"):
        make_exchange("nosuchexchange")
    assert exchange.calls == []
    assert market.series() == []
