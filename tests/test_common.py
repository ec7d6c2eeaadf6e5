"""The shared helpers of ``cryptotrading.common``: clock, input checks, row views.

Hostile values (any text, integers far beyond 64 bits, deep or non-JSON documents)
end in a value or a :class:`ValidationError`, never another exception.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, inspect

from cryptotrading import agents
from cryptotrading.common import checks, clock, views
from cryptotrading.errors import ValidationError
from cryptotrading.intelligence import views as intelligence_views
from cryptotrading.intelligence.decisions import record_analysis
from cryptotrading.models import AgentMemory, MLModel
from cryptotrading.models.intelligence import (
    AIAnalysis,
    AIInsight,
    DecisionOutcome,
    MLPrediction,
    TradingDecision,
)
from cryptotrading.models.trading import PortfolioPosition, TradingOrder
from cryptotrading.trading.orders import ORDER_FIELDS
from cryptotrading.trading.portfolio import POSITION_FIELDS

# ------------------------------------------------------------------------ checks


@given(st.text(min_size=1, max_size=50).filter(str.strip))
def test_text_is_stored_exactly_as_given(value: str) -> None:
    assert checks.text(value, "note", limit=50) == value
    assert checks.text(f"  {value}\n", "note", limit=53) == f"  {value}\n"


@pytest.mark.parametrize("value", ["", "   ", "\n\t", None, 3, b"bytes", ["a"]])
def test_blank_or_non_text_is_refused(value: Any) -> None:
    with pytest.raises(ValidationError, match="note must be a non-empty string"):
        checks.text(value, "note", limit=10)


def test_text_limit_counts_every_character() -> None:
    assert checks.text("x" * 10, "note", limit=10) == "x" * 10
    with pytest.raises(ValidationError, match="longer than 10"):
        checks.text(" " + "x" * 10, "note", limit=10)  # blanks count: nothing is stripped
    assert checks.optional_text(None, "note", limit=1) is None


def test_stored_text_reads_back_unchanged(app_engine: Engine) -> None:
    """Services and intelligence store free text and names exactly as given (until
    issue 11 the services stripped it and intelligence did not)."""
    agents.register_agent(app_engine, " bot ", "trader")
    content = "  indented\n    code block\n"
    agents.remember(app_engine, " bot ", "note", content)
    (memory,) = agents.recall(app_engine, " bot ")
    assert memory.content == content and memory.agent_id == " bot "
    with pytest.raises(ValidationError, match="agent id must be a non-empty string"):
        agents.register_agent(app_engine, " \t", "trader")
    analysis = record_analysis(
        app_engine, symbol="BTC/USDT", model=" m ", analysis_type="t", signal="bullish"
    )
    assert analysis.model == " m "


_json = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)


@given(st.one_of(_json, st.dictionaries(st.text(max_size=3), _json, max_size=4)))
def test_documents_are_strict_json_objects_or_refused(value: Any) -> None:
    try:
        checked = checks.document(value, "payload")
    except ValidationError as exc:
        assert exc.message.startswith("payload ")
    else:
        assert checked is value and (value is None or isinstance(value, dict))


def test_document_refusals_name_the_reason() -> None:
    assert checks.document(None, "payload") is None
    with pytest.raises(ValidationError, match="must be a JSON object, got list"):
        checks.document([1], "payload")
    with pytest.raises(ValidationError, match="not strict JSON"):
        checks.document({"x": math.inf}, "payload")
    with pytest.raises(ValidationError, match="not strict JSON"):
        checks.document({1: "int key"} | {"x": object()}, "payload")
    deep: dict[str, Any] = {}
    for _ in range(100_000):
        deep = {"d": deep}
    with pytest.raises(ValidationError, match="nested too deeply"):
        checks.document(deep, "payload")


@given(st.one_of(st.integers(), st.floats(), st.text(max_size=10), st.booleans(), st.none()))
def test_numbers_are_checked_without_surprises(value: Any) -> None:
    for check in (
        lambda v: checks.number(v, "n", low=0, high=10),
        lambda v: checks.integer(v, "n", low=0, high=10),
        lambda v: checks.probability(v, "p"),
    ):
        try:
            result = check(value)
        except ValidationError:
            continue
        assert 0 <= result <= 10


def test_integers_too_large_to_show_are_refused_by_name() -> None:
    huge = 10**5000  # has no repr: str() of it raises ValueError
    with pytest.raises(ValidationError, match="int too large to show"):
        checks.integer(huge, "limit", high=10)
    with pytest.raises(ValidationError, match="not a number"):
        checks.number(huge, "price")
    with pytest.raises(ValidationError, match="not a number"):
        checks.probability(huge)
    with pytest.raises(ValidationError, match="is not a number"):
        checks.number(True, "price")


# ------------------------------------------------------------------------- clock


def test_clock_makes_every_time_aware_utc() -> None:
    naive = datetime(2021, 1, 4, 10, 0)
    assert clock.as_utc(naive) == naive.replace(tzinfo=UTC)
    plus_two = datetime(2021, 1, 4, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert clock.as_utc(plus_two).tzinfo is UTC and clock.as_utc(plus_two).hour == 10
    assert clock.maybe_utc(None) is None
    assert clock.utcnow().tzinfo is UTC
    with pytest.raises(ValidationError, match="expires_at must be a datetime, got str"):
        clock.maybe_utc("2021-01-04", "expires_at")


def test_iso_forms() -> None:
    assert clock.iso(datetime(2021, 1, 4, 10, tzinfo=UTC)) == "2021-01-04T10:00:00+00:00"
    assert clock.iso(None) is None
    assert clock.iso_ms(1_609_459_200_000) == "2021-01-01T00:00:00Z"


@given(st.integers())
def test_iso_ms_never_raises(timestamp: int) -> None:
    assert isinstance(clock.iso_ms(timestamp), str)


@given(st.text(max_size=40))
def test_parse_time_returns_utc_or_a_validation_error(text: str) -> None:
    try:
        parsed = clock.parse_time(text, "--since")
    except ValidationError as exc:
        assert "--since" in exc.message
    else:
        assert parsed.tzinfo is UTC


# ------------------------------------------------------------------------- views


def test_decimal_text_is_plain_and_exact() -> None:
    assert views.decimal_text(Decimal("1.500000000000000000")) == "1.5"
    assert views.decimal_text(Decimal("1E+3")) == "1000"
    assert views.decimal_text(Decimal("0E-18")) == "0"
    assert views.decimal_text(Decimal("0.000000000000000001")) == "0.000000000000000001"
    assert views.decimal_text(None) is None


def test_row_view_of_named_fields_and_of_every_column() -> None:
    at = datetime(2021, 1, 4, 10, tzinfo=UTC)
    model = MLModel(id=7, model_name="m", version="1", stage="dev", parameters={"a": 1})
    assert views.row_view(model, ("id", "model_name", "parameters")) == {
        "id": 7,
        "model_name": "m",
        "parameters": {"a": 1},
    }
    memory = AgentMemory(agent_id="bot", content="  kept  ", embedding=b"\x00" * 8, created_at=at)
    full = views.row_view(memory, exclude=("id",))
    assert "id" not in full and full["content"] == "  kept  "
    assert full["embedding"] == "<8 bytes>" and full["created_at"] == "2021-01-04T10:00:00+00:00"


@pytest.mark.parametrize(
    ("fields", "model"),
    [
        (intelligence_views.ANALYSIS_FIELDS, AIAnalysis),
        (intelligence_views.INSIGHT_FIELDS, AIInsight),
        (intelligence_views.DECISION_FIELDS, TradingDecision),
        (intelligence_views.OUTCOME_FIELDS, DecisionOutcome),
        (intelligence_views.PREDICTION_FIELDS, MLPrediction),
        (intelligence_views.MODEL_FIELDS, MLModel),
        (ORDER_FIELDS, TradingOrder),
        (POSITION_FIELDS, PortfolioPosition),
    ],
)
def test_view_fields_name_columns(fields: tuple[str, ...], model: type) -> None:
    columns = {attr.key for attr in inspect(model).column_attrs}
    assert len(set(fields)) == len(fields) and set(fields) <= columns, set(fields) - columns
