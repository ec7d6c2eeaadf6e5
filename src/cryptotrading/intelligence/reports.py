"""Reports over evaluated decisions: hit rate and average P&L per model, analysis
type and confidence bucket -- a calibration table (is a 0.8-confidence call right
80 % of the time?)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from cryptotrading.common.views import decimal_text
from cryptotrading.db.session import read_session
from cryptotrading.errors import ValidationError
from cryptotrading.models.intelligence import (
    AIAnalysis,
    AIInsight,
    DecisionOutcome,
    TradingDecision,
)
from cryptotrading.trading.money import ZERO, exact

GROUPINGS = ("model", "analysis_type", "bucket", "action", "symbol")
NONE = "(none)"


@dataclass(frozen=True)
class CalibrationRow:
    """One group of evaluated decisions."""

    key: dict[str, str]
    count: int
    hits: int
    mean_confidence: float
    average_return_pct: Decimal
    average_pnl: Decimal | None
    total_pnl: Decimal
    with_pnl: int

    @property
    def hit_rate(self) -> float:
        return self.hits / self.count if self.count else 0.0

    @property
    def calibration_gap(self) -> float:
        """Hit rate minus mean confidence (negative: over-confident)."""
        return self.hit_rate - self.mean_confidence

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.key,
            "count": self.count,
            "hits": self.hits,
            "hit_rate": round(self.hit_rate, 4),
            "mean_confidence": round(self.mean_confidence, 4),
            "calibration_gap": round(self.calibration_gap, 4),
            "average_return_pct": decimal_text(self.average_return_pct.quantize(Decimal("1e-6"))),
            "average_pnl": decimal_text(
                None if self.average_pnl is None else self.average_pnl.quantize(Decimal("1e-6"))
            ),
            "total_pnl": decimal_text(self.total_pnl),
            "with_pnl": self.with_pnl,
        }


def bucket_of(confidence: float, width: float) -> str:
    """The confidence bucket label, e.g. ``0.6-0.7`` (1.0 falls in the top bucket)."""
    buckets = round(1 / width)
    index = min(int(confidence / width + 1e-9), buckets - 1)
    low, high = index * width, (index + 1) * width
    return f"{low:.2f}-{high:.2f}"


@dataclass(frozen=True)
class _Evaluated:
    keys: dict[str, str]
    confidence: float
    correct: bool
    return_pct: Decimal
    pnl: Decimal | None


def _rows(engine: Engine, horizon_minutes: int | None, bucket_width: float) -> list[_Evaluated]:
    query = (
        select(
            DecisionOutcome.return_pct,
            DecisionOutcome.profit_loss,
            DecisionOutcome.is_correct,
            TradingDecision.confidence,
            TradingDecision.action,
            TradingDecision.symbol,
            AIAnalysis.model,
            AIAnalysis.analysis_type,
        )
        .join(TradingDecision, TradingDecision.id == DecisionOutcome.decision_id)
        .outerjoin(AIInsight, AIInsight.id == TradingDecision.insight_id)
        .outerjoin(AIAnalysis, AIAnalysis.id == AIInsight.analysis_id)
        .where(TradingDecision.deleted_at.is_(None))
        .order_by(DecisionOutcome.id)
    )
    if horizon_minutes is not None:
        query = query.where(DecisionOutcome.horizon_minutes == horizon_minutes)
    with read_session(engine, "app store") as session:
        result = session.execute(query).all()
    return [
        _Evaluated(
            {
                "model": row.model or NONE,
                "analysis_type": row.analysis_type or NONE,
                "bucket": bucket_of(row.confidence, bucket_width),
                "action": row.action,
                "symbol": row.symbol,
            },
            row.confidence,
            bool(row.is_correct),
            row.return_pct if row.return_pct is not None else ZERO,
            row.profit_loss,
        )
        for row in result
    ]


def calibration_report(
    engine: Engine,
    *,
    by: Sequence[str] = ("model", "analysis_type", "bucket"),
    horizon_minutes: int | None = None,
    bucket_width: float = 0.1,
) -> list[CalibrationRow]:
    """Hit rate, mean confidence and average return / P&L per group, sorted by key.

    *by* picks the grouping columns among ``model``, ``analysis_type``, ``bucket``
    (confidence bucket), ``action`` and ``symbol``; an empty *by* gives one total row.
    """
    unknown = [name for name in by if name not in GROUPINGS]
    if unknown:
        raise ValidationError(
            f"cannot group by {', '.join(unknown)}", hint=f"Use {', '.join(GROUPINGS)}."
        )
    if not 0 < bucket_width <= 1 or abs(round(1 / bucket_width) * bucket_width - 1) > 1e-9:
        raise ValidationError(
            f"bucket width {bucket_width} does not divide 0..1 evenly",
            hint="Use 0.1, 0.2, 0.25 or 0.5.",
        )
    groups: dict[tuple[str, ...], list[_Evaluated]] = {}
    for row in _rows(engine, horizon_minutes, bucket_width):
        groups.setdefault(tuple(row.keys[name] for name in by), []).append(row)
    report = []
    for key in sorted(groups):
        members = groups[key]
        pnls = [m.pnl for m in members if m.pnl is not None]
        with exact():
            total = sum(pnls, start=ZERO)
            report.append(
                CalibrationRow(
                    key=dict(zip(by, key, strict=True)),
                    count=len(members),
                    hits=sum(m.correct for m in members),
                    mean_confidence=sum(m.confidence for m in members) / len(members),
                    average_return_pct=sum((m.return_pct for m in members), start=ZERO)
                    / len(members),
                    average_pnl=total / len(pnls) if pnls else None,
                    total_pnl=total,
                    with_pnl=len(pnls),
                )
            )
    return report


def render_rows(report: Sequence[CalibrationRow]) -> tuple[list[str], list[list[str]]]:
    """Column names and text rows of a report, for a table."""
    if not report:
        return [], []
    keys = list(report[0].key)
    columns = [*keys, "n", "hits", "hit rate", "mean conf", "gap", "avg return %", "avg P&L"]
    rows = []
    for row in report:
        rows.append(
            [
                *(row.key[k] for k in keys),
                str(row.count),
                str(row.hits),
                f"{row.hit_rate:.1%}",
                f"{row.mean_confidence:.2f}",
                f"{row.calibration_gap:+.2f}",
                f"{row.average_return_pct:.3f}",
                "-" if row.average_pnl is None else f"{row.average_pnl:.2f}",
            ]
        )
    return columns, rows


def format_report(report: Sequence[CalibrationRow]) -> str:
    """A plain-text table of the report (for logs and docs)."""
    columns, rows = render_rows(report)
    if not columns:
        return "(no evaluated decisions)"
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)
