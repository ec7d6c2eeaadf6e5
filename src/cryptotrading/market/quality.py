"""Gaps and data quality of stored candles; the quality pass writes
``data_quality_metrics`` (one row per source, symbol and timeframe).

Scores (0..1, in ``quality_scores``): *completeness* = candles present / candles
expected between the first and last stored candle; *validity* = 1 - outliers / candles,
an outlier being a close-to-close log return more than ``outlier_z`` robust standard
deviations (median absolute deviation x 1.4826) from the median return; *freshness* =
1 when the newest candle is at most ``fresh_after`` timeframes old, decaying as
``fresh_after / age`` after that. ``overall_score`` = completeness x validity x freshness.
``duplicates_rejected`` counts candles delivered again, identical, by imports and
downloads of that series (skipped, not rewritten; from ``data_ingestion_jobs``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from cryptotrading.common.clock import iso_ms
from cryptotrading.common.views import AsDict
from cryptotrading.db.session import unit_of_work
from cryptotrading.market.candles import Candles
from cryptotrading.market.store import MarketStore, TimeLike
from cryptotrading.market.timeframes import Timeframe, parse_timeframe
from cryptotrading.models.quality import DataIngestionJob, DataQualityMetric

LOCAL_SOURCE = "local"


@dataclass(frozen=True)
class Gap:
    """Missing candles: from ``start`` (first missing open time) to ``end`` (open time
    of the next stored candle, exclusive); ``missing`` candles."""

    start: int
    end: int
    missing: int

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "start_iso": iso_ms(self.start), "end_iso": iso_ms(self.end)}


def gaps_in(candles: Candles, frame: Timeframe) -> list[Gap]:
    """Gaps between consecutive (sorted) candles of a series of timeframe *frame*."""
    ts = candles.timestamp
    if len(ts) < 2:
        return []
    jumps = np.diff(frame.slots(ts))
    where = np.flatnonzero(jumps > 1)
    return [Gap(frame.next_open(int(ts[i])), int(ts[i + 1]), int(jumps[i]) - 1) for i in where]


def find_gaps(
    market: MarketStore,
    symbol: str,
    timeframe: str,
    *,
    exchange: str | None = None,
    start: TimeLike = None,
    end: TimeLike = None,
) -> list[Gap]:
    """Missing intervals of a series (resampled from finer data when needed)."""
    frame = parse_timeframe(timeframe)
    candles = market.read_candles(symbol, timeframe, start, end, exchange)
    return gaps_in(candles, frame)


@dataclass(frozen=True)
class QualityReport(AsDict):
    """The quality of one series, as written to ``data_quality_metrics``."""

    source: str
    symbol: str
    timeframe: str
    candles: int
    expected: int
    completeness: float
    gaps_count: int
    missing: int
    duplicates_rejected: int
    outliers_count: int
    staleness_seconds: float
    scores: dict[str, float]
    overall_score: float
    period_start: int
    period_end: int


def count_outliers(close: np.ndarray, z: float) -> int:
    """Close-to-close log returns further than *z* robust sigmas from the median."""
    if len(close) < 3:
        return 0
    returns = np.diff(np.log(close))
    median = float(np.median(returns))
    mad = float(np.median(np.abs(returns - median))) * 1.4826
    if mad == 0:
        return int(np.count_nonzero(returns != median)) if z <= 0 else 0
    return int(np.count_nonzero(np.abs(returns - median) > z * mad))


def assess(
    candles: Candles,
    timeframe: str,
    *,
    source: str,
    symbol: str,
    duplicates: int = 0,
    now_ms: int | None = None,
    outlier_z: float = 12.0,
    fresh_after: float = 2.0,
) -> QualityReport | None:
    """Measure one series; None when it has no candles."""
    if len(candles) == 0:
        return None
    frame = parse_timeframe(timeframe)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    first, last = int(candles.timestamp[0]), int(candles.timestamp[-1])
    expected = int(frame.slots(last) - frame.slots(first)) + 1
    gaps = gaps_in(candles, frame)
    outliers = count_outliers(candles.close, outlier_z)
    staleness = max(0.0, (now_ms - frame.next_open(last)) / 1000)
    age_in_steps = staleness * 1000 / frame.ms
    freshness = 1.0 if age_in_steps <= fresh_after else fresh_after / age_in_steps
    completeness = len(candles) / expected
    validity = 1.0 - outliers / len(candles)
    scores = {"completeness": completeness, "validity": validity, "freshness": freshness}
    return QualityReport(
        source=source,
        symbol=symbol,
        timeframe=timeframe,
        candles=len(candles),
        expected=expected,
        completeness=completeness,
        gaps_count=len(gaps),
        missing=sum(gap.missing for gap in gaps),
        duplicates_rejected=duplicates,
        outliers_count=outliers,
        staleness_seconds=staleness,
        scores=scores,
        overall_score=completeness * validity * freshness,
        period_start=first,
        period_end=frame.next_open(last),
    )


def _duplicates(market: MarketStore, source: str | None, symbol: str, timeframe: str) -> int:
    query = select(DataIngestionJob.params).where(
        DataIngestionJob.symbol == symbol, DataIngestionJob.timeframe == timeframe
    )
    query = query.where(
        DataIngestionJob.source.is_(None) if source is None else DataIngestionJob.source == source
    )
    with unit_of_work(market.stores.engine(market.stores.app), "app store") as session:
        params = session.scalars(query).all()
    return sum(int((p or {}).get("unchanged", 0)) for p in params)


def quality_pass(
    market: MarketStore,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    now_ms: int | None = None,
    outlier_z: float = 12.0,
) -> list[QualityReport]:
    """Assess every stored series (optionally one symbol / timeframe) and write one
    ``data_quality_metrics`` row per series, all in one transaction."""
    reports = []
    for info in market.series():
        if (symbol and info.symbol != symbol) or (timeframe and info.timeframe != timeframe):
            continue
        candles = market.read_candles(info.symbol, info.timeframe, exchange=info.exchange)
        duplicates = _duplicates(market, info.exchange or None, info.symbol, info.timeframe)
        report = assess(
            candles,
            info.timeframe,
            source=info.exchange or LOCAL_SOURCE,
            symbol=info.symbol,
            duplicates=duplicates,
            now_ms=now_ms,
            outlier_z=outlier_z,
        )
        if report is not None:
            reports.append(report)
    with unit_of_work(market.stores.engine(market.stores.app), "app store") as session:
        for report in reports:
            session.add(
                DataQualityMetric(
                    source=report.source,
                    symbol=report.symbol,
                    timeframe=report.timeframe,
                    quality_scores={
                        **report.scores,
                        "candles": report.candles,
                        "expected": report.expected,
                        "missing": report.missing,
                    },
                    completeness=report.completeness,
                    gaps_count=report.gaps_count,
                    duplicates_rejected=report.duplicates_rejected,
                    outliers_count=report.outliers_count,
                    staleness_seconds=report.staleness_seconds,
                    overall_score=report.overall_score,
                    period_start=datetime.fromtimestamp(report.period_start / 1000, UTC),
                    period_end=datetime.fromtimestamp(report.period_end / 1000, UTC),
                )
            )
    return reports
