"""The market-data engine: candles in ``time_series`` (write, read at any timeframe,
import/export, ccxt download), tickers and cross-exchange aggregation, gaps and
data quality, and the Parquet archive of old candles (``archive`` writes it,
``archived`` merges it into reads)."""

from __future__ import annotations

from cryptotrading.market.candles import CANDLE_DTYPE, Candles, to_candles
from cryptotrading.market.resample import resample
from cryptotrading.market.store import LatestCandle, MarketStore, SeriesInfo, WriteResult
from cryptotrading.market.timeframes import Timeframe, parse_timeframe

__all__ = [
    "CANDLE_DTYPE",
    "Candles",
    "LatestCandle",
    "MarketStore",
    "SeriesInfo",
    "Timeframe",
    "WriteResult",
    "parse_timeframe",
    "resample",
    "to_candles",
]
