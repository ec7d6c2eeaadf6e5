"""Hostile input to the queue's library API (Hypothesis, both backends): payloads that
are no JSON object, NaN, deep nesting, huge strings, non-string keys, NUL and lone
surrogates; ids, group / idempotency / correlation keys and reasons with control
characters, very long or exotic Unicode, or no text at all; ttl / delay / lease /
priority / max_attempts / limit numbers out of range or not numbers.

Property: every call succeeds or raises a named error of the input kind
(:class:`ValidationError`, :class:`NotFoundError`, :class:`ConflictError`) with a hint
-- never a driver error (a :class:`StoreError`), never another exception -- and a
refused call writes nothing (row counts and message rows unchanged).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import Engine

from cryptotrading import agents
from cryptotrading.agents import QueuePolicy
from cryptotrading.errors import (
    ConflictError,
    CryptotradingError,
    NotFoundError,
    StoreError,
    ValidationError,
)
from tests.agents._queue_support import (
    RECEIVER,
    SENDER,
    counts,
    hostile_settings,
    pair,
    rows,
    send,
    settle_everything,
)

SMALL = QueuePolicy(max_payload_bytes=2000)

# --- strategies ---------------------------------------------------------------------------

NASTY_TEXT = [
    "",
    " ",
    "\t\n",
    "\x00",
    "a\x00b",
    "\x1b[31m",
    "\x7f",
    "\x85",
    "\ud800",
    "ok\udfff",
    "\u200b",
    "\u202eevil",
    "💥" * 40,
    "é" * 129,
    "x" * 129,
    "x" * 100_000,
    "'; DROP TABLE a2a_messages; --",
    "%s%n",
    "receiver",
]
#: Text made of awkward pieces: NUL, controls, surrogates, zero-width, emoji, quotes.
PIECES = st.sampled_from(["a", "\x00", "\x01", "\n", "\ud800", "\u200b", "💥", "'", "é", " "])
hostile_text = st.one_of(
    st.sampled_from(NASTY_TEXT),
    st.text(max_size=300),
    st.lists(PIECES, max_size=40).map("".join),
)
not_text = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.binary(max_size=8),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
hostile_id = st.one_of(hostile_text, not_text)

hostile_number = st.one_of(
    st.floats(),  # NaN, infinities, subnormals, huge
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from(
        [True, False, None, "1", b"1", 10**400, -0.0, 5e-324, 1e308, Decimal("sNaN"), 1j]
    ),
    st.decimals(allow_nan=True),
    st.text(max_size=5),
)
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23))
hostile_time = st.one_of(
    st.datetimes(timezones=st.builds(timezone, offsets)),
    st.datetimes(),  # naive: taken as UTC
    st.sampled_from(
        [
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),  # before year 1 in UTC
            datetime(9999, 12, 31, 23, 59, tzinfo=timezone(-timedelta(hours=1))),
            datetime.max.replace(tzinfo=UTC),
            date(2030, 1, 1),
            "2030-01-01",
            0,
        ]
    ),
)


def _nest(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value} if kind == "dict" else [value]
    return {"deep": value}


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and infinities are not JSON
    hostile_text,
    st.sampled_from([b"bytes", {1, 2}, datetime(2021, 1, 1), Decimal("1.5"), 1j]),
    st.just(5000).map(lambda digits: 10**digits),  # no repr: past the int-to-str limit
)
json_tree = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(hostile_text, st.integers(), st.none()), children, max_size=4),
    ),
    max_leaves=12,
)
hostile_payload = st.one_of(
    json_tree,  # anything, a dict or not
    st.dictionaries(st.text(max_size=8), json_tree, max_size=5),
    st.dictionaries(
        st.one_of(st.integers(), st.none(), st.booleans(), st.floats(), st.tuples(st.integers())),
        st.integers(),
        min_size=1,
        max_size=3,
    ),
    st.tuples(st.integers(min_value=1, max_value=6000), st.sampled_from(["dict", "list"])).map(
        lambda t: _nest(*t)
    ),
    st.integers(min_value=1900, max_value=2100).map(lambda n: {"s": "x" * n}),  # near 2000 B
    st.sampled_from([{"s": "x" * 3_000_000}, {"s": "é" * 1500}]),
)


# --- the property -----------------------------------------------------------------------------


@pytest.fixture
def engine(app_engine: Engine) -> Engine:
    pair(app_engine)
    return app_engine


def refused_cleanly(engine: Engine, call: Callable[[], object]) -> CryptotradingError | None:
    """Run *call*: None when it succeeded; its error when it was refused by name, with a
    hint and without writing (any other outcome fails the test)."""
    before, message_rows = counts(engine), rows(engine)
    try:
        call()
    except CryptotradingError as exc:
        assert not isinstance(exc, StoreError), f"a driver error leaked: {exc!r}"
        assert isinstance(exc, ValidationError | NotFoundError | ConflictError), repr(exc)
        assert exc.hint and exc.message, repr(exc)
        assert counts(engine) == before and rows(engine) == message_rows
        return exc
    return None


def _valid_payload(payload: Any) -> bool:
    """What the queue must accept: a JSON object of strict JSON with text keys, valid
    Unicode without NUL, within the policy's size."""
    try:
        dumped = json.dumps(payload, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        size = len(dumped.encode())
    except (TypeError, ValueError, RecursionError, UnicodeEncodeError):
        return False
    return (
        isinstance(payload, dict)
        and size <= SMALL.max_payload_bytes
        and not _has_nul_or_odd_key(payload)
    )


def _has_nul_or_odd_key(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                return True
            pending.extend([*item.keys(), *item.values()])
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif isinstance(item, str) and "\x00" in item:
            return True
    return False


@hostile_settings()
@given(payload=hostile_payload)
@example(payload={"x": "a\x00b"})  # PostgreSQL: a driver error; SQLite stored it
@example(payload={"\x00": 1})
@example(payload={"x": "\ud800"})
@example(payload={"x": float("nan")})
@example(payload={1: 2})  # json.dumps made the key "1": not stored as sent
@example(payload={"t": ("a\x00",)})  # a tuple is a JSON array
@example(payload=["not", "an", "object"])
def test_hostile_payloads(engine: Engine, payload: Any) -> None:
    before = counts(engine)["a2a_messages"]
    error = refused_cleanly(
        engine, lambda: agents.send_message(engine, SENDER, RECEIVER, payload, policy=SMALL)
    )
    assert (error is None) == _valid_payload(payload), error
    if error is None:
        assert counts(engine)["a2a_messages"] == before + 1


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_deep_nesting_is_refused_by_name(engine: Engine, kind: str) -> None:
    # Hypothesis cannot print such an example, so it is a plain test too.
    error = refused_cleanly(
        engine, lambda: agents.send_message(engine, SENDER, RECEIVER, _nest(5000, kind))
    )
    assert isinstance(error, ValidationError) and "nested too deeply" in error.message


FIELDS = ["sender", "receiver", "message_type", "correlation_id", "group_key", "idempotency_key"]


@hostile_settings(1.5)
@given(field=st.sampled_from(FIELDS), value=hostile_id)
@example(field="receiver", value="receiver\x00")  # PostgreSQL: a driver error
@example(field="group_key", value="g\x00")
@example(field="idempotency_key", value="\ud800")
@example(field="correlation_id", value="\x1b[31m")
@example(field="message_type", value=5)
def test_hostile_ids_and_keys(engine: Engine, field: str, value: Any) -> None:
    options: dict[str, Any] = {}
    sender, receiver = SENDER, RECEIVER
    if field == "sender":
        sender = value
    elif field == "receiver":
        receiver = value
    else:
        options[field] = value

    sent: list[Any] = []
    error = refused_cleanly(
        engine,
        lambda: sent.append(agents.send_message(engine, sender, receiver, {"x": 1}, **options)),
    )
    if error is None:  # a valid key is stored exactly as given
        (message,) = sent
        stored = agents.get_message(engine, message.message_id)
        assert getattr(stored, field if field in options else f"{field}_id") == value


@hostile_settings(1.5)
@given(
    field=st.sampled_from(
        ["ttl_seconds", "delay_seconds", "priority", "max_attempts", "expires_at", "not_before"]
    ),
    value=st.one_of(hostile_number, hostile_time),
)
@example(field="not_before", value=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
@example(field="ttl_seconds", value=float("nan"))
@example(field="priority", value=10**30)
def test_hostile_send_numbers_and_times(engine: Engine, field: str, value: Any) -> None:
    before = counts(engine)["a2a_messages"]
    error = refused_cleanly(engine, lambda: send(engine, {"x": 1}, **{field: value}))
    if error is None:
        assert counts(engine)["a2a_messages"] == before + 1


@hostile_settings()
@given(
    receiver=st.one_of(st.just(RECEIVER), hostile_id),
    limit=st.one_of(st.just(5), hostile_number),
    lease=st.one_of(st.just(30.0), hostile_number),
    wait=st.one_of(st.just(0.0), hostile_number),
)
@example(receiver=5, limit=5, lease=30.0, wait=0.0)  # PostgreSQL: varchar = integer
@example(receiver="receiver\x00", limit=5, lease=30.0, wait=0.0)
def test_hostile_claims_and_receives(
    engine: Engine, receiver: Any, limit: Any, lease: Any, wait: Any
) -> None:
    for call in (
        lambda: agents.claim_messages(engine, receiver, limit=limit, lease_seconds=lease),
        lambda: agents.receive(
            engine, receiver, limit=limit, lease_seconds=lease, wait_seconds=wait
        ),
    ):
        send(engine)  # something to claim: a valid wait returns at once
        refused_cleanly(engine, call)
    settle_everything(engine)


@hostile_settings(1.5)
@given(
    what=st.sampled_from(["ack", "nack", "extend", "reason", "delay", "seconds"]),
    message_id=st.one_of(hostile_id, st.just("real")),
    receipt=st.one_of(hostile_id, st.just("real")),
    reason=hostile_text,
    number=hostile_number,
)
@example(what="ack", message_id="x\x00", receipt="real", reason="x", number=1)
@example(what="ack", message_id=["x"], receipt="real", reason="x", number=1)
@example(what="nack", message_id=5, receipt="real", reason="x", number=1)
@example(what="reason", message_id="real", receipt="real", reason="a\x00", number=1)
def test_hostile_settlements(
    engine: Engine, what: str, message_id: Any, receipt: Any, reason: Any, number: Any
) -> None:
    sent = send(engine)
    (got,) = agents.claim_messages(engine, RECEIVER, limit=1)
    assert got.message_id == sent.message_id
    mid = got.message_id if message_id == "real" else message_id
    rcp = got.receipt if receipt == "real" else receipt
    calls: dict[str, Callable[[], object]] = {
        "ack": lambda: agents.acknowledge(engine, mid, rcp),
        "nack": lambda: agents.nack(engine, mid, rcp, reason="x"),
        "extend": lambda: agents.extend_lease(engine, mid, rcp, seconds=10),
        "reason": lambda: agents.nack(engine, got.message_id, got.receipt, reason=reason),
        "delay": lambda: agents.nack(
            engine, got.message_id, got.receipt, reason="x", delay_seconds=number
        ),
        "seconds": lambda: agents.extend_lease(engine, got.message_id, got.receipt, seconds=number),
    }
    error = refused_cleanly(engine, calls[what])
    after = agents.get_message(engine, got.message_id)
    if what == "reason" and error is None:
        assert after.last_error == reason  # stored exactly
    if error is not None:
        assert after.status == "delivered"
    settle_everything(engine)  # the next example starts with an empty queue


@hostile_settings()
@given(
    ids=st.one_of(
        st.none(), hostile_text, st.lists(hostile_id, max_size=3), st.integers(), st.binary()
    ),
    receiver=st.one_of(st.none(), hostile_id),
    limit=st.one_of(st.just(10), hostile_number),
    message_id=hostile_id,
)
@example(ids=[1, 2], receiver=None, limit=10, message_id="\x00")  # SQLite: a TypeError
@example(ids="abc", receiver="\x00", limit=10, message_id=5)
@example(ids=7, receiver=None, limit=10, message_id="x")
def test_hostile_dead_letter_calls(
    engine: Engine, ids: Any, receiver: Any, limit: Any, message_id: Any
) -> None:
    refused_cleanly(engine, lambda: agents.list_dead_letters(engine, receiver_id=receiver))
    refused_cleanly(engine, lambda: agents.list_dead_letters(engine, limit=limit))
    refused_cleanly(engine, lambda: agents.get_message(engine, message_id))
    refused_cleanly(engine, lambda: agents.list_messages(engine, RECEIVER, status=message_id))
    refused_cleanly(engine, lambda: agents.redrive(engine, ids, receiver_id=receiver))


@hostile_settings()
@given(
    field=st.sampled_from(["agent_id", "agent_type", "name", "endpoint", "capabilities", "config"]),
    value=st.one_of(hostile_id, hostile_payload, st.lists(hostile_id, max_size=3)),
)
@example(field="capabilities", value=5)  # a TypeError
@example(field="config", value={"k": "\x00"})
@example(field="agent_id", value="bot\x00")
def test_hostile_registrations(engine: Engine, field: str, value: Any) -> None:
    arguments: dict[str, Any] = {"agent_id": "new-agent", "agent_type": "t", field: value}
    error = refused_cleanly(engine, lambda: agents.register_agent(engine, **arguments))
    if error is None and field == "agent_id":
        assert agents.get_agent(engine, value).agent_id == value
    for call in (
        lambda: agents.connect_agents(engine, SENDER, value),
        lambda: agents.disconnect_agents(engine, value, RECEIVER),
        lambda: agents.heartbeat(engine, value),
    ):
        refused_cleanly(engine, call)


@hostile_settings()
@given(
    field=st.sampled_from(
        [
            "max_payload_bytes",
            "lease_seconds",
            "max_attempts",
            "backoff_base_seconds",
            "backoff_max_seconds",
            "open_messaging",
        ]
    ),
    value=hostile_number,
)
@example(field="backoff_max_seconds", value=1e300)  # a nack's not_before overflowed
@example(field="lease_seconds", value=float("nan"))
def test_hostile_policies(field: str, value: Any) -> None:
    try:
        policy = QueuePolicy(**{field: value})
    except ValidationError as exc:
        assert exc.hint
        return
    delay = policy.backoff(10**6)
    assert math.isfinite(delay) and 0 <= delay <= 10**7
