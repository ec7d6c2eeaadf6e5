"""A download run in its own process, for the kill -9 test: the real ccxt bitstamp
class served from the real Binance 1h candles, 200 candles per page, 150 ms apart
(ccxt's rate limiter). Prints one line per committed page.

    python -m tests.market.download_worker <candle file>   (CRYPTOTRADING_* env set)
"""

from __future__ import annotations

import sys
from pathlib import Path

from cryptotrading.market import MarketStore
from cryptotrading.market.download import download_ohlcv
from cryptotrading.settings import load_settings
from cryptotrading.stores import Stores
from tests.helpers import load_rows
from tests.market.recorded import bitstamp_ohlc_route, recorded_exchange


def main(path: str) -> None:
    exchange = recorded_exchange(
        "bitstamp", bitstamp_ohlc_route(load_rows(Path(path))), rateLimit=150
    )
    with Stores(load_settings()) as stores:
        download_ohlcv(
            MarketStore(stores),
            exchange,
            symbol="BTC/USDT",
            timeframe="1h",
            since="2020-12-01",
            until="2021-07-01",
            limit=200,
            progress=lambda rows, _pct: print(rows, flush=True),
        )


if __name__ == "__main__":
    main(sys.argv[1])
