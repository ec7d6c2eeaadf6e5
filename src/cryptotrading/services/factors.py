"""Category 6 -- factors and analytics.

* :func:`define_factor` / :func:`list_factors` (``factor_definitions``).
* :func:`record_factor_values` upserts values on (symbol, factor_name, timestamp);
  :func:`factor_series` reads them back as a pandas DataFrame.
* :func:`import_fear_greed` loads the real Crypto Fear & Greed index
  (alternative.me, TradingView "Pine seeds" CSV without header:
  ``YYYYMMDDT,open,high,low,close,volume``, close = index value) into
  ``sentiment_data``, idempotently.
* :func:`record_sentiment`, :func:`record_onchain`, :func:`record_macro` store one
  observation (replacing the one of the same symbol, time and source);
  :func:`sentiment_series`, :func:`onchain_series`, :func:`macro_series` read them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from cryptotrading.common.checks import document, integer, number, optional_text
from cryptotrading.common.checks import text as checked_text
from cryptotrading.common.clock import as_utc
from cryptotrading.db import unit_of_work
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.models.analytics import (
    FactorData,
    FactorDefinition,
    MacroData,
    OnchainData,
    SentimentData,
)
from cryptotrading.services._common import WHERE, read_session, serialise
from cryptotrading.services._upsert import upsert

FEAR_GREED_SOURCE = "alternative.me"
Progress = Callable[[int, int], None]


# -------------------------------------------------------------------------- factors


def define_factor(
    engine: Engine,
    name: str,
    category: str,
    *,
    description: str | None = None,
    formula: str | None = None,
    lookback_hours: int | None = None,
    parameters: dict[str, Any] | None = None,
    is_active: bool = True,
) -> FactorDefinition:
    """Create or update the definition of factor *name*."""
    fields: dict[str, Any] = {
        "category": checked_text(category, "factor category", limit=64),
        "description": description,
        "formula": formula,
        "lookback_hours": None
        if lookback_hours is None
        else integer(lookback_hours, "lookback_hours", low=1),
        "parameters": document(parameters, "parameters"),
        "is_active": bool(is_active),
    }
    name = checked_text(name, "factor name", limit=128)
    with unit_of_work(engine, WHERE) as session:
        factor = session.scalar(select(FactorDefinition).where(FactorDefinition.name == name))
        if factor is None:
            factor = FactorDefinition(name=name)
            session.add(factor)
        for key, value in fields.items():
            setattr(factor, key, value)
        session.flush()
        return factor


def list_factors(engine: Engine, *, category: str | None = None) -> list[FactorDefinition]:
    query = select(FactorDefinition).order_by(FactorDefinition.name)
    if category is not None:
        query = query.where(FactorDefinition.category == category)
    with read_session(engine) as session:
        return list(session.scalars(query))


def _active_factor(session: Session, name: str) -> FactorDefinition:
    factor = session.scalar(select(FactorDefinition).where(FactorDefinition.name == name))
    if factor is None or not factor.is_active:
        state = "is not defined" if factor is None else "is inactive"
        raise NotFoundError(
            f"factor {name!r} {state}",
            hint="Define (or re-activate) it first with services.factors.define_factor.",
        )
    return factor


def record_factor_values(
    engine: Engine,
    factor_name: str,
    symbol: str,
    values: pd.Series | Mapping[datetime, float] | Iterable[tuple[datetime, float]],
    *,
    quality_score: float | None = None,
) -> int:
    """Upsert values of a factor for *symbol*: a Series indexed by time, a mapping
    time -> value, or (time, value) pairs. Returns how many rows were written."""
    symbol = checked_text(symbol, "symbol", limit=32)
    quality = (
        None if quality_score is None else number(quality_score, "quality_score", low=0, high=1)
    )
    pairs = values.items() if isinstance(values, pd.Series | Mapping) else values
    rows: dict[datetime, dict[str, Any]] = {}
    for stamp, value in pairs:
        when = as_utc(stamp.to_pydatetime() if isinstance(stamp, pd.Timestamp) else stamp, "time")
        if when in rows:
            raise ValidationError(
                f"time {when.isoformat()} appears twice in the values",
                hint="Give each timestamp once.",
            )
        rows[when] = {
            "symbol": symbol,
            "factor_name": factor_name,
            "timestamp": when,
            "value": number(value, f"value at {when.isoformat()}"),
            "quality_score": quality,
        }
    with unit_of_work(engine, WHERE) as session:
        _active_factor(session, factor_name)
        upsert(
            session,
            FactorData.__table__,  # type: ignore[arg-type]
            list(rows.values()),
            keys=("symbol", "factor_name", "timestamp"),
            update=("value", "quality_score"),
        )
    return len(rows)


def factor_series(
    engine: Engine,
    factor_name: str,
    symbol: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Columns ``value`` and ``quality_score`` indexed by UTC ``timestamp`` (start
    inclusive, end exclusive)."""
    query = select(FactorData.timestamp, FactorData.value, FactorData.quality_score).where(
        FactorData.factor_name == factor_name, FactorData.symbol == symbol
    )
    query = _window(query, FactorData.timestamp, start, end).order_by(FactorData.timestamp)
    with read_session(engine) as session:
        if (
            session.scalar(select(FactorDefinition.id).where(FactorDefinition.name == factor_name))
            is None
        ):
            raise NotFoundError(
                f"factor {factor_name!r} is not defined", hint="List factors with list_factors."
            )
        rows = session.execute(query).all()
    return _frame(rows, ["value", "quality_score"], {"value": float, "quality_score": float})


def _window(query: Any, column: Any, start: datetime | None, end: datetime | None) -> Any:
    if start is not None:
        query = query.where(column >= as_utc(start, "start"))
    if end is not None:
        query = query.where(column < as_utc(end, "end"))
    return query


def _frame(rows: Any, columns: list[str], kinds: Mapping[str, type]) -> pd.DataFrame:
    """A frame indexed by UTC timestamp; float columns float64 (NaN for missing), int
    columns nullable ``Int64``."""
    frame = pd.DataFrame([tuple(row) for row in rows], columns=["timestamp", *columns])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    for column, kind in kinds.items():
        frame[column] = frame[column].astype("Int64" if kind is int else "float64")
    return frame.set_index("timestamp")


# ---------------------------------------------------------------- fear & greed


@dataclass(frozen=True)
class ImportReport:
    """What an import did: rows read, inserted, updated (value changed), unchanged."""

    path: str
    symbol: str
    rows: int
    inserted: int
    updated: int
    unchanged: int
    first: datetime | None
    last: datetime | None


def parse_fear_greed(path: Path) -> dict[datetime, int]:
    """Day (UTC midnight) -> index value of a Pine-seeds Fear & Greed CSV; every line
    is checked before anything is written."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ValidationError(
            f"cannot read {path}: {exc.strerror}", hint="Give the path of an existing CSV file."
        ) from None
    values: dict[datetime, int] = {}
    hint = "Each line must be YYYYMMDDT,open,high,low,close,volume (no header)."
    with handle:
        try:
            lines = list(enumerate(csv.reader(handle), start=1))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ValidationError(
                f"{path.name} is not a UTF-8 CSV file: {exc}", hint=hint
            ) from None
        for line, fields in lines:
            if not fields:
                continue
            where = f"{path.name} line {line}"
            if len(fields) != 6:
                raise ValidationError(f"{where}: expected 6 fields, got {len(fields)}", hint=hint)
            try:
                day = datetime.strptime(fields[0].strip(), "%Y%m%dT").replace(tzinfo=UTC)
                close = float(fields[4])
            except ValueError:
                shown = repr(fields)[:200]
                raise ValidationError(f"{where}: cannot parse {shown}", hint=hint) from None
            if not math.isfinite(close) or close != int(close) or not 0 <= close <= 100:
                raise ValidationError(
                    f"{where}: index value {fields[4][:40]!r} is not a whole number in 0..100",
                    hint=hint,
                )
            if day in values:
                raise ValidationError(f"{where}: day {fields[0][:40]} appears twice", hint=hint)
            values[day] = int(close)
    if not values:
        raise ValidationError(f"{path} holds no data", hint="Give a non-empty CSV file.")
    return values


def import_fear_greed(
    engine: Engine,
    path: Path | str,
    *,
    symbol: str = "BTC",
    progress: Progress | None = None,
    chunk_size: int = 500,
) -> ImportReport:
    """Import the Fear & Greed CSV into ``sentiment_data`` (source ``alternative.me``).
    Idempotent: days already stored are left alone, or updated when the value
    changed. One transaction; concurrent imports are serialised."""
    path = Path(path)
    symbol = checked_text(symbol, "symbol", limit=32)
    values = parse_fear_greed(path)
    total = len(values)
    with unit_of_work(engine, WHERE) as session:
        serialise(session, f"sentiment:{symbol}:{FEAR_GREED_SOURCE}")
        existing = {
            row.timestamp: row
            for row in session.scalars(
                select(SentimentData).where(
                    SentimentData.symbol == symbol, SentimentData.source == FEAR_GREED_SOURCE
                )
            )
        }
        fresh: list[dict[str, Any]] = []
        updated = unchanged = 0
        for day, value in values.items():
            row = existing.get(day)
            if row is None:
                fresh.append(
                    {
                        "symbol": symbol,
                        "timestamp": day,
                        "fear_greed_index": value,
                        "source": FEAR_GREED_SOURCE,
                        "meta": {"file": path.name},
                    }
                )
            elif row.fear_greed_index != value:
                row.fear_greed_index = value
                updated += 1
            else:
                unchanged += 1
        session.flush()
        done = total - len(fresh)
        if progress is not None:
            progress(done, total)
        for offset in range(0, len(fresh), chunk_size):
            chunk = fresh[offset : offset + chunk_size]
            session.execute(insert(SentimentData.__table__), chunk)  # type: ignore[arg-type]
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    days = sorted(values)
    return ImportReport(str(path), symbol, total, len(fresh), updated, unchanged, days[0], days[-1])


# ----------------------------------------------------------- sentiment, on-chain, macro

_SENTIMENT: dict[str, type] = {
    "social_volume": float,
    "sentiment_score": float,
    "fear_greed_index": int,
}
_ONCHAIN: dict[str, type] = {
    "active_addresses": int,
    "transaction_volume": float,
    "transaction_count": int,
    "hash_rate": float,
    "exchange_inflow": float,
    "exchange_outflow": float,
}
_MACRO: dict[str, type] = {
    "spy_correlation": float,
    "dxy_correlation": float,
    "gold_correlation": float,
    "interest_rates": float,
    "inflation_rate": float,
    "vix": float,
}


def _record(
    engine: Engine,
    model: Any,
    kinds: Mapping[str, type],
    symbol: str,
    timestamp: datetime,
    metrics: Mapping[str, float | int | None],
    source: str | None,
) -> Any:
    symbol = checked_text(symbol, "symbol", limit=32)
    when = as_utc(timestamp, "timestamp")
    source = optional_text(source, "source", limit=64)
    unknown = sorted(set(metrics) - set(kinds))
    if unknown or not metrics:
        raise ValidationError(
            f"unknown or missing metrics for {model.__tablename__}: {', '.join(unknown) or '-'}",
            hint=f"Give one or more of: {', '.join(kinds)}.",
        )
    fields: dict[str, Any] = {}
    for name, value in metrics.items():
        if value is None:
            fields[name] = None
        elif kinds[name] is int:
            fields[name] = integer(value, name, low=0)
        else:
            fields[name] = number(value, name)
    with unit_of_work(engine, WHERE) as session:
        query = select(model).where(
            model.symbol == symbol,
            model.timestamp == when,
            model.source.is_(None) if source is None else model.source == source,
        )
        row = session.scalar(query.limit(1))
        if row is None:
            row = model(symbol=symbol, timestamp=when, source=source)
            session.add(row)
        for name, value in fields.items():
            setattr(row, name, value)
        session.flush()
        return row


def _series(
    engine: Engine,
    model: Any,
    kinds: Mapping[str, type],
    symbol: str,
    source: str | None,
    start: datetime | None,
    end: datetime | None,
) -> pd.DataFrame:
    columns = [*kinds, "source"]
    query = select(model.timestamp, *(getattr(model, c) for c in columns)).where(
        model.symbol == symbol
    )
    if source is not None:
        query = query.where(model.source == source)
    query = _window(query, model.timestamp, start, end).order_by(model.timestamp, model.id)
    with read_session(engine) as session:
        rows = session.execute(query).all()
    return _frame(rows, columns, kinds)


def record_sentiment(
    engine: Engine,
    symbol: str,
    timestamp: datetime,
    *,
    source: str | None = None,
    **metrics: float | int | None,
) -> SentimentData:
    """Store social_volume / sentiment_score / fear_greed_index of *symbol* at a time."""
    row: SentimentData = _record(
        engine, SentimentData, _SENTIMENT, symbol, timestamp, metrics, source
    )
    return row


def record_onchain(
    engine: Engine,
    symbol: str,
    timestamp: datetime,
    *,
    source: str | None = None,
    **metrics: float | int | None,
) -> OnchainData:
    """Store on-chain metrics (active_addresses, transaction_volume, ...) of *symbol*."""
    row: OnchainData = _record(engine, OnchainData, _ONCHAIN, symbol, timestamp, metrics, source)
    return row


def record_macro(
    engine: Engine,
    symbol: str,
    timestamp: datetime,
    *,
    source: str | None = None,
    **metrics: float | int | None,
) -> MacroData:
    """Store macro indicators (spy_correlation, interest_rates, vix, ...) for *symbol*."""
    row: MacroData = _record(engine, MacroData, _MACRO, symbol, timestamp, metrics, source)
    return row


def sentiment_series(
    engine: Engine,
    symbol: str,
    *,
    source: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    return _series(engine, SentimentData, _SENTIMENT, symbol, source, start, end)


def onchain_series(
    engine: Engine,
    symbol: str,
    *,
    source: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    return _series(engine, OnchainData, _ONCHAIN, symbol, source, start, end)


def macro_series(
    engine: Engine,
    symbol: str,
    *,
    source: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    return _series(engine, MacroData, _MACRO, symbol, source, start, end)


def sentiment_count(engine: Engine, symbol: str, source: str = FEAR_GREED_SOURCE) -> int:
    """Rows of *symbol* from *source* in ``sentiment_data``."""
    with read_session(engine) as session:
        query = select(func.count()).where(
            SentimentData.symbol == symbol, SentimentData.source == source
        )
        return int(session.scalar(query) or 0)
