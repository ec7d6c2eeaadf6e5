"""Real ccxt exchange classes whose HTTP layer (``Exchange.fetch``) serves recorded
responses instead of the network: ccxt's request building, rate limiter and parsing
all run for real.

Responses come from ``ccxt_static_response/`` (raw exchange payloads recorded by the
ccxt project, with ccxt's own parsed result) and, for candle history, from the real
Binance candle files re-encoded in the exchange's wire format.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import ccxt

MARKET_IDS = {"bitstamp": "btcusdt", "p2b": "BTC_USDT", "coinbaseexchange": "BTC-USDT"}

Route = Callable[[str, dict[str, str]], Any]


def static_cases(market_data_dir: Path, exchange_id: str) -> dict[str, Any]:
    """The recorded test cases of one exchange: ``{method: [case, ...]}``."""
    path = market_data_dir / "ccxt_static_response" / f"{exchange_id}.json"
    with path.open() as handle:
        cases: dict[str, Any] = json.load(handle)["methods"]
    return cases


def recorded_exchange(exchange_id: str, route: Route, **config: Any) -> ccxt.Exchange:
    """An instance of the real ccxt class *exchange_id* whose ``fetch`` calls
    ``route(path, query)``; ``calls`` lists every URL requested. Markets are set
    from a minimal BTC/USDT spot market instead of being downloaded."""
    base: type[ccxt.Exchange] = getattr(ccxt, exchange_id)

    class Recorded(base):  # type: ignore[misc]
        calls: list[str]

        def fetch(
            self, url: str, method: str = "GET", headers: Any = None, body: Any = None
        ) -> Any:
            self.calls.append(url)
            parsed = urlparse(url)
            query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
            return route(parsed.path, query)

    exchange: ccxt.Exchange = Recorded({"enableRateLimit": True, **config})
    exchange.calls = []
    exchange.set_markets(
        [
            {
                "id": MARKET_IDS.get(exchange_id, "BTCUSDT"),
                "symbol": "BTC/USDT",
                "base": "BTC",
                "quote": "USDT",
                "baseId": "BTC",
                "quoteId": "USDT",
                "type": "spot",
                "spot": True,
                "active": True,
            }
        ]
    )
    return exchange


def bitstamp_ohlc_route(
    candles: list[list[Any]], *, fail: Callable[[int, dict[str, str]], None] | None = None
) -> Route:
    """Bitstamp's ``/api/v2/ohlc/<pair>/`` served from real candle rows, in the wire
    format of the recorded ``bitstamp.json`` fetchOHLCV response (dicts of strings,
    seconds). *fail(request_number, query)* may raise to simulate errors."""
    requests = 0

    def route(path: str, query: dict[str, str]) -> Any:
        nonlocal requests
        requests += 1
        if fail is not None:
            fail(requests, query)
        assert path.startswith("/api/v2/ohlc/"), path
        step = int(query["step"]) * 1000
        start = int(query["start"]) * 1000
        end = int(query.get("end", 2**40)) * 1000
        limit = int(query.get("limit", 1000))
        picked = [row for row in candles if start <= row[0] <= end and row[0] % step == 0]
        return {
            "data": {
                "pair": "BTC/USDT",
                "ohlc": [
                    {
                        "timestamp": str(row[0] // 1000),
                        "open": repr(row[1]),
                        "high": repr(row[2]),
                        "low": repr(row[3]),
                        "close": repr(row[4]),
                        "volume": repr(row[5]),
                    }
                    for row in picked[:limit]
                ],
            }
        }

    return route
