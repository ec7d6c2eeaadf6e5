"""Fuzz ``decisions``: analyses, insights, decisions, execution, evaluation, reports."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as s
from tests.fuzz.harness import SQLITE_ONLY, Fuzzer, fuzz_settings, options

pytestmark = pytest.mark.fuzz

maybe = st.none


@fuzz_settings()
@given(
    symbol=s.symbols,
    model=s.any_text,
    kind=s.any_text,
    signal=s.any_text,
    confidence=st.one_of(maybe(), s.numbers),
    payload=st.one_of(maybe(), s.json_text),
    at=st.one_of(maybe(), s.times),
)
def test_analyze(
    fuzzer: Fuzzer,
    symbol: str,
    model: str,
    kind: str,
    signal: str,
    confidence: str | None,
    payload: str | None,
    at: str | None,
) -> None:
    fuzzer.run(
        [
            "decisions",
            "analyze",
            "--json",
            *options(
                symbol=symbol,
                model=model,
                type=kind,
                signal=signal,
                confidence=confidence,
                payload=payload,
                at=at,
            ),
        ]
    )


@SQLITE_ONLY
@fuzz_settings()
@given(
    kind=s.any_text,
    recommendation=s.any_text,
    confidence=s.numbers,
    analysis=st.one_of(maybe(), st.just("1"), s.integers),
    symbol=st.one_of(maybe(), s.symbols),
    rationale=st.one_of(maybe(), s.any_text),
    expires=st.one_of(maybe(), s.times),
    at=st.one_of(maybe(), s.times),
)
def test_insight(
    seeded: Fuzzer,
    kind: str,
    recommendation: str,
    confidence: str,
    analysis: str | None,
    symbol: str | None,
    rationale: str | None,
    expires: str | None,
    at: str | None,
) -> None:
    seeded.run(
        [
            "decisions",
            "insight",
            "--json",
            *options(
                type=kind,
                recommendation=recommendation,
                confidence=confidence,
                analysis=analysis,
                symbol=symbol,
                rationale=rationale,
                expires_at=expires,
                at=at,
            ),
        ]
    )


@SQLITE_ONLY
@fuzz_settings()
@given(
    insight=st.one_of(st.just("1"), s.integers),
    user=st.one_of(maybe(), st.just("alice"), s.any_text),
    action=st.one_of(maybe(), st.sampled_from(["buy", "sell", "hold"]), s.any_text),
    quantity=st.one_of(maybe(), s.numbers),
    price=st.one_of(maybe(), s.numbers),
    at=st.one_of(maybe(), s.times),
)
def test_decide(
    seeded: Fuzzer,
    insight: str,
    user: str | None,
    action: str | None,
    quantity: str | None,
    price: str | None,
    at: str | None,
) -> None:
    seeded.run(
        [
            "decisions",
            "decide",
            "--json",
            *options(user=user, action=action, quantity=quantity, price=price, at=at),
            "--",
            insight,
        ]
    )


@SQLITE_ONLY
@fuzz_settings()
@given(
    decision=st.one_of(st.just("1"), s.integers),
    amount=st.one_of(maybe(), s.numbers),
    kind=st.one_of(st.sampled_from(["market", "limit", "stop", "stop_limit"]), s.any_text),
    price=st.one_of(maybe(), s.numbers),
    stop=st.one_of(maybe(), s.numbers),
    exchange=st.one_of(maybe(), s.any_text),
    then=st.sampled_from(["none", "cancel", "delete"]),
)
def test_execute_cancel_delete(
    seeded: Fuzzer,
    decision: str,
    amount: str | None,
    kind: str,
    price: str | None,
    stop: str | None,
    exchange: str | None,
    then: str,
) -> None:
    seeded.run(
        [
            "decisions",
            "execute",
            "--json",
            *options(amount=amount, type=kind, price=price, stop_price=stop, exchange=exchange),
            "--",
            decision,
        ]
    )
    if then != "none":
        seeded.run(["decisions", then, "--json", "--", decision])


@SQLITE_ONLY
@fuzz_settings()
@given(
    decision=st.one_of(maybe(), st.just("1"), s.integers),
    horizon=st.one_of(st.just("60"), s.integers),
    frequency=st.one_of(maybe(), st.sampled_from(["1h", "1m", "1M"]), s.any_text),
    hold_band=st.one_of(maybe(), s.numbers),
    max_gap=st.one_of(maybe(), s.integers),
)
def test_evaluate(
    seeded: Fuzzer,
    decision: str | None,
    horizon: str,
    frequency: str | None,
    hold_band: str | None,
    max_gap: str | None,
) -> None:
    args = ["decisions", "evaluate", "--json"]
    args += options(horizon=horizon, timeframe=frequency, hold_band=hold_band, max_gap=max_gap)
    seeded.run(args + ([] if decision is None else ["--", decision]))


@SQLITE_ONLY
@fuzz_settings()
@given(
    symbol=st.one_of(maybe(), s.symbols),
    status=st.one_of(maybe(), s.any_text),
    limit=st.one_of(maybe(), s.integers),
    by=st.one_of(maybe(), st.just("model,bucket,action,symbol"), s.any_text),
    horizon=st.one_of(maybe(), s.integers),
    width=st.one_of(maybe(), s.numbers),
)
def test_list_and_report(
    seeded: Fuzzer,
    symbol: str | None,
    status: str | None,
    limit: str | None,
    by: str | None,
    horizon: str | None,
    width: str | None,
) -> None:
    seeded.run(["decisions", "list", *options(symbol=symbol, status=status, limit=limit)])
    seeded.run(["decisions", "report", *options(by=by, horizon=horizon, bucket_width=width)])
