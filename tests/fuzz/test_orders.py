"""Fuzz ``orders`` and ``portfolio``: symbols, sides, exact quantities and prices,
order ids, times and users."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as s
from tests.fuzz.harness import SQLITE_ONLY, Fuzzer, fuzz_settings, options

pytestmark = [pytest.mark.fuzz, SQLITE_ONLY]

SUBMIT = s.variants(
    {
        "user": "alice",
        "symbol": "BTC/USDT",
        "side": "buy",
        "type": "limit",
        "amount": "0.5",
        "price": "100",
        "stop_price": None,
        "client_id": None,
        "exchange": None,
        "tif": None,
        "decision": None,
    },
    {
        "user": st.one_of(st.just("1"), s.any_text),
        "symbol": s.symbols,
        "side": s.any_text,
        "type": st.one_of(st.sampled_from(["market", "stop", "stop_limit"]), s.any_text),
        "amount": s.numbers,
        "price": s.maybe(s.numbers),
        "stop_price": s.maybe(s.numbers),
        "client_id": s.maybe(s.any_text),
        "exchange": s.maybe(s.any_text),
        "tif": s.maybe(st.one_of(st.sampled_from(["GTC", "IOC", "FOK", "GTD", "PO"]), s.any_text)),
        "decision": s.maybe(st.one_of(st.just("1"), s.integers)),
    },
)


@fuzz_settings()
@given(values=SUBMIT)
def test_submit(seeded: Fuzzer, values: dict[str, str | None]) -> None:
    seeded.run(["orders", "submit", "--json", *options(**values)])


FILL = s.variants(
    {"order": None, "price": "100", "amount": "0.001", "fee": None, "at": None},
    {
        "order": s.any_text,
        "price": s.numbers,
        "amount": s.numbers,
        "fee": s.maybe(s.numbers),
        "at": s.maybe(s.times),
    },
)


@fuzz_settings()
@given(values=FILL)
def test_fill(seeded: Fuzzer, values: dict[str, str | None]) -> None:
    order = values.pop("order") or seeded.facts["order_id"]
    seeded.run(["orders", "fill", "--json", *options(**values), "--", order])


@fuzz_settings()
@given(
    event=st.sampled_from(["accept", "reject", "cancel", "expire", "show"]),
    values=s.variants(
        {"order": None, "exchange_order_id": None, "at": None},
        {"order": s.any_text, "exchange_order_id": s.maybe(s.any_text), "at": s.maybe(s.times)},
    ),
)
def test_transitions(seeded: Fuzzer, event: str, values: dict[str, str | None]) -> None:
    order = values.pop("order") or seeded.facts["order_id"]
    extra = [] if event == "show" else options(**values)
    seeded.run(["orders", event, "--json", *extra, "--", order])


@fuzz_settings()
@given(
    values=s.variants(
        {"user": "alice", "symbol": None, "status": None, "limit": None},
        {
            "user": s.maybe(s.any_text),
            "symbol": s.maybe(s.symbols),
            "status": s.maybe(s.any_text),
            "limit": s.maybe(s.integers),
        },
    ),
    as_json=st.booleans(),
)
def test_list(seeded: Fuzzer, values: dict[str, str | None], as_json: bool) -> None:
    seeded.run(["orders", "list", *(["--json"] if as_json else []), *options(**values)])


@fuzz_settings()
@given(
    values=s.variants(
        {"user": "alice", "starting_cash": None, "as_of": None, "timeframe": None},
        {
            "user": s.any_text,
            "starting_cash": s.maybe(s.numbers),
            "as_of": s.maybe(s.times),
            "timeframe": s.maybe(st.one_of(st.sampled_from(["1m", "1M", "1d"]), s.any_text)),
        },
    ),
    mark=st.booleans(),
    closed=st.booleans(),
)
def test_portfolio(seeded: Fuzzer, values: dict[str, str | None], mark: bool, closed: bool) -> None:
    if "filled" not in seeded.facts:  # a position to show and mark
        seeded.ok(["orders", "fill", seeded.facts["order_id"], "--price", "100", "--amount", "1"])
        seeded.facts["filled"] = "1"
    user = values["user"] or "alice"
    seeded.run(["portfolio", "positions", *(["--all"] if closed else []), f"--user={user}"])
    no_mark = [] if mark else ["--no-mark"]
    seeded.run(["portfolio", "summary", "--json", *no_mark, *options(**values)])
