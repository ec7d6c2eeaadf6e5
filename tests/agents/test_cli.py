"""``cryptotrading agents``: registry, connections, the message queue, dead letters,
contexts and memory through the command line, on both backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer.main

from cryptotrading.cli import _output as output
from cryptotrading.cli import app
from cryptotrading.settings import Settings
from tests.helpers import (
    SettingsFactory,
    assert_refused,
    invoke,
    invoke_json,
    settings_env,
    table_counts,
)


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings("three")


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """Two connected agents, ``bot-a`` (a trader) and ``bot-b`` (an analyst)."""
    target = settings_env(settings)
    invoke(target, "agents", "register", "bot-a", "--type", "trader", "-c", "trade", code=0)
    invoke(target, "agents", "register", "bot-b", "--type", "analyst", "-c", "analyze", code=0)
    invoke(target, "agents", "connect", "bot-a", "bot-b", code=0)
    return target


def agents_cli(env: dict[str, str], *args: str, **options: Any) -> Any:
    """``cryptotrading agents ARGS --json``, parsed."""
    return invoke_json(env, "agents", *args, "--json", **options)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables 200 columns wide (the console's width is fixed when it is created: 80
    columns when stdout is not a terminal), so whole ids can be found in them."""
    monkeypatch.setattr(output.console, "_width", 200)


def shown(env: dict[str, str], *args: str) -> str:
    """What ``cryptotrading agents ARGS`` prints without ``--json``."""
    return str(invoke(env, "agents", *args, code=0).stdout)


def send(env: dict[str, str], payload: dict[str, Any], *args: str) -> dict[str, Any]:
    found: dict[str, Any] = agents_cli(
        env, "send", "bot-a", "bot-b", "--payload", json.dumps(payload), *args
    )
    return found


def test_registry(env: dict[str, str]) -> None:
    made = agents_cli(env, "register", "bot-c", "--type", "risk", "-c", "b", "-c", "a",
                      "--config", '{"limit": 2}', "--name", "Risk")  # fmt: skip
    assert made["capabilities"] == ["a", "b"] and made["config"] == {"limit": 2}
    assert [a["agent_id"] for a in agents_cli(env, "list")] == ["bot-a", "bot-b", "bot-c"]
    assert [a["agent_id"] for a in agents_cli(env, "list", "-c", "analyze")] == ["bot-b"]
    assert agents_cli(env, "show", "bot-c")["name"] == "Risk"
    beat = agents_cli(env, "heartbeat", "bot-c")
    assert beat["agent_id"] == "bot-c" and beat["last_heartbeat_at"].endswith("+00:00")
    linked = agents_cli(env, "connect", "bot-c", "bot-a", "--protocol", "grpc")
    assert linked["status"] == "active" and linked["protocol"] == "grpc"
    listed = agents_cli(env, "connections", "bot-a")
    assert [(c["protocol"], c["status"]) for c in listed] == [("a2a", "active"), ("grpc", "active")]
    assert agents_cli(env, "disconnect", "bot-a", "bot-c", "--protocol", "grpc")["status"] == (
        "inactive"
    )
    links = shown(env, "connections", "bot-a")
    assert "bot-b" in links and "bot-c" in links and "inactive" in links
    gone = agents_cli(env, "deactivate", "bot-c")
    assert gone["status"] == "inactive" and gone["deleted_at"]
    assert "bot-c" not in [a["agent_id"] for a in agents_cli(env, "list")]
    assert "bot-c" in [a["agent_id"] for a in agents_cli(env, "list", "--all")]
    assert agents_cli(env, "show", "bot-c")["status"] == "inactive"  # shown, not refused
    assert "bot-b" in shown(env, "list")
    assert_refused(invoke(env, "agents", "heartbeat", "bot-c"), "is deactivated", 6)
    assert_refused(invoke(env, "agents", "show", "ghost"), "'ghost' is not registered", 6)
    assert_refused(invoke(env, "agents", "connect", "bot-a", "bot-a"), "to itself", 5)
    assert_refused(
        invoke(env, "agents", "disconnect", "bot-a", "bot-b", "--protocol", "x"),
        "are not connected",
        6,
    )
    assert agents_cli(env, "register", "bot-c", "--type", "risk")["status"] == "active"


def test_send_receive_ack_in_priority_order(env: dict[str, str]) -> None:
    low = send(env, {"n": 1}, "--correlation-id", "c-1", "--idempotency-key", "k-1")
    high = send(env, {"n": 2}, "--priority", "3", "--type", "signal", "--max-attempts", "2")
    assert low["status"] == "pending" and low["correlation_id"] == "c-1"
    assert low["idempotency_key"] == "k-1" and high["max_attempts"] == 2
    listed = agents_cli(env, "messages", "bot-b")  # lists without claiming
    assert {m["message_id"] for m in listed} == {low["message_id"], high["message_id"]}
    assert {m["status"] for m in agents_cli(env, "messages", "bot-b")} == {"pending"}
    first = agents_cli(env, "receive", "bot-b", "--limit", "1", "--lease", "60")
    assert [m["message_id"] for m in first] == [high["message_id"]]
    assert first[0]["status"] == "delivered" and first[0]["attempts"] == 1 and first[0]["receipt"]
    table = shown(env, "receive", "bot-b")  # the rest
    second = agents_cli(env, "messages", "bot-b", "--status", "delivered")
    lows = [m for m in second if m["message_id"] == low["message_id"]]
    assert lows and lows[0]["receipt"]
    assert low["message_id"] in table and lows[0]["receipt"] in table
    acked = agents_cli(env, "ack", high["message_id"], "--receipt", first[0]["receipt"])
    assert acked["status"] == "processed"
    again = agents_cli(env, "ack", high["message_id"], "--receipt", first[0]["receipt"])
    assert again["status"] == "processed"  # idempotent
    assert "processed" in shown(env, "ack", low["message_id"])
    assert agents_cli(env, "messages", "bot-b", "--status", "pending") == []
    assert agents_cli(env, "receive", "bot-b", "--wait", "0.05") == []
    assert "no messages" in shown(env, "receive", "bot-b")


def test_nack_extend_dead_letters_redrive(env: dict[str, str]) -> None:
    one = send(env, {"n": 1}, "--max-attempts", "1")
    two = send(env, {"n": 2}, "--max-attempts", "3", "--group", "g")
    got = agents_cli(env, "receive", "bot-b", "--limit", "5")
    receipts = {m["message_id"]: m["receipt"] for m in got}
    assert set(receipts) == {one["message_id"], two["message_id"]}
    extended = agents_cli(env, "extend", two["message_id"], "--receipt",
                          receipts[two["message_id"]], "--seconds", "600")  # fmt: skip
    assert extended["lease_expires_at"] > got[0]["lease_expires_at"]
    back = agents_cli(env, "nack", two["message_id"], "--reason", "busy", "--delay", "0",
                      "--receipt", receipts[two["message_id"]])  # fmt: skip
    assert back["status"] == "pending" and back["last_error"] == "busy"
    dead = agents_cli(env, "nack", one["message_id"], "--reason", "broken payload")
    assert dead["status"] == "dead" and dead["last_error"] == "broken payload"
    assert_refused(invoke(env, "agents", "ack", two["message_id"]), "is pending, not delivered", 9)
    redelivered = agents_cli(env, "receive", "bot-b")
    assert [m["attempts"] for m in redelivered] == [2]
    stale = invoke(
        env, "agents", "ack", two["message_id"], "--receipt", receipts[two["message_id"]]
    )
    assert_refused(stale, "receipt", 9)  # delivered again: the first receipt is void
    receipt = redelivered[0]["receipt"]
    agents_cli(env, "nack", two["message_id"], "--reason", "again", "--delay", "0",
               "--receipt", receipt)  # fmt: skip
    letters = agents_cli(env, "dead-letters", "list")
    assert [(m["message_id"], m["last_error"]) for m in letters] == [
        (one["message_id"], "broken payload")
    ]
    assert agents_cli(env, "dead-letters", "list", "--agent", "bot-a") == []
    assert "broken payload" in shown(env, "dead-letters", "list")
    letter = agents_cli(env, "dead-letters", "show", one["message_id"])
    assert letter["payload"] == {"n": 1} and letter["status"] == "dead"
    assert_refused(invoke(env, "agents", "dead-letters", "redrive"), "MESSAGE_ID", 5)
    both = ("dead-letters", "redrive", one["message_id"], "--all")
    assert_refused(invoke(env, "agents", *both), "one of them", 5)
    not_dead = invoke(env, "agents", "dead-letters", "redrive", two["message_id"])
    assert_refused(not_dead, "not a dead letter", 9)
    unknown = invoke(env, "agents", "dead-letters", "redrive", one["message_id"], "nope")
    assert_refused(unknown, "'nope' does not exist", 6)
    assert agents_cli(env, "dead-letters", "redrive", one["message_id"]) == {"redriven": 1}
    assert agents_cli(env, "messages", "bot-b", "--status", "dead") == []
    again = agents_cli(env, "receive", "bot-b", "--limit", "5")
    for message in again:
        agents_cli(env, "nack", message["message_id"], "--reason", "no", "--delay", "0")
    assert [m["attempts"] for m in again] == [1, 3]
    assert len(agents_cli(env, "dead-letters", "list")) == 2
    assert agents_cli(env, "dead-letters", "redrive", "--agent", "bot-b") == {"redriven": 2}
    assert agents_cli(env, "dead-letters", "redrive", "--all") == {"redriven": 0}


def test_payload_from_a_file_or_stdin(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "payload.json"
    path.write_text('\ufeff{"from": "file", "nested": {"x": [1, 2]}}\n')
    from_file = agents_cli(env, "send", "bot-a", "bot-b", "--payload-file", str(path))
    assert from_file["payload"] == {"from": "file", "nested": {"x": [1, 2]}}
    piped = agents_cli(env, "send", "bot-a", "bot-b", "--payload-file", "-", input='{"s": 1}')
    assert piped["payload"] == {"s": 1}


def test_send_refusals_write_nothing(
    settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    invoke(env, "agents", "register", "loner", "--type", "t", code=0)
    invoke(env, "agents", "register", "old", "--type", "t", code=0)
    invoke(env, "agents", "connect", "bot-a", "old", code=0)
    invoke(env, "agents", "deactivate", "old", code=0)
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bad.bin").write_bytes(b"\xff\xfe{}")
    before = table_counts(settings)
    base = ("agents", "send", "bot-a")
    cases: list[tuple[tuple[str, ...], str, int, dict[str, str]]] = [
        (("bot-b", "--payload", "{nope"), "--payload is not valid JSON", 5, {}),
        (("bot-b", "--payload", "[1]"), "--payload must be a JSON object", 5, {}),
        (("bot-b", "--payload", '{"x": NaN}'), "not strict JSON", 5, {}),
        (("bot-b",), "give --payload JSON or --payload-file PATH", 5, {}),
        (("bot-b", "--payload", "{}", "--payload-file", "-"), "not both", 5, {}),
        (("bot-b", "--payload", '{"x": "' + "y" * 100 + '"}'), "over the limit of 64", 5,
         {"CRYPTOTRADING_A2A_MAX_PAYLOAD_BYTES": "64"}),
        (("ghost", "--payload", "{}"), "'ghost' is not registered", 6, {}),
        (("old", "--payload", "{}"), "'old' is deactivated", 6, {}),
        (("loner", "--payload", "{}"), "are not connected", 6, {}),
        (("bot-b", "--payload-file", str(tmp_path / "nope.json")), "no such file", 6, {}),
        (("bot-b", "--payload-file", str(tmp_path)), "is a directory", 5, {}),
        (("bot-b", "--payload-file", "/dev/zero"), "is a character device", 5, {}),
        (("bot-b", "--payload-file", str(tmp_path / "list.json")), "must be a JSON object", 5, {}),
        (("bot-b", "--payload-file", str(tmp_path / "bad.bin")), "is not UTF-8 text", 5, {}),
        (("bot-b", "--payload", "{}", "--ttl", "1", "--delay", "5"), "would expire", 5, {}),
        (("bot-b", "--payload", "{}", "--priority", "5000"), "priority", 5, {}),
        (("bot-b", "--payload", "{}", "--max-attempts", "0"), "max attempts", 5, {}),
    ]  # fmt: skip
    for args, message, code, extra in cases:
        assert_refused(invoke(env, *base, *args, env=extra), message, code)
    huge = invoke(env, *base, "bot-b", "--payload-file", "-", input="{" + " " * (2**24 + 1))
    assert_refused(huge, "stdin is larger than", 5)
    assert table_counts(settings) == before
    opened = {"CRYPTOTRADING_A2A_OPEN_MESSAGING": "true"}
    sent = invoke(env, *base, "loner", "--payload", "{}", "--json", env=opened, code=0)
    assert json.loads(sent.stdout)["receiver_id"] == "loner"


def test_settling_refusals(env: dict[str, str]) -> None:
    message = send(env, {"n": 1})
    mid = message["message_id"]
    cases = [
        (("ack", "nope"), "does not exist", 6),
        (("ack", mid), "is pending, not delivered", 9),
        (("nack", mid, "--reason", "x"), "is pending, not delivered", 9),
        (("nack", mid, "--reason", " "), "reason must be a non-empty string", 5),
        (("extend", mid, "--receipt", "r", "--seconds", "5"), "receipt", 9),
        (("receive", "ghost"), "'ghost' is not registered", 6),
        (("receive", "bot-b", "--wait", "4000"), "wait seconds", 5),
        (("receive", "bot-b", "--limit", "0"), "limit", 5),
        (("messages", "bot-b", "--status", "lost"), "unknown message status", 5),
        (("dead-letters", "show", "nope"), "does not exist", 6),
    ]
    for args, text, code in cases:
        assert_refused(invoke(env, "agents", *args), text, code)
    got = agents_cli(env, "receive", "bot-b")
    assert_refused(
        invoke(env, "agents", "extend", mid, "--receipt", got[0]["receipt"], "--seconds", "nan"),
        "must be finite",
        5,
    )
    assert agents_cli(env, "messages", "bot-b")[0]["status"] == "delivered"


def test_context_and_memory(env: dict[str, str], tmp_path: Path) -> None:
    stored = agents_cli(env, "context", "set", "bot-a", "market", "--data", '{"trend": "up"}')
    assert stored["context_data"] == {"trend": "up"} and stored["expires_at"] is None
    agents_cli(
        env, "context", "set", "bot-a", "market", "--data", '{"trend": "down"}', "--ttl", "60"
    )
    assert agents_cli(env, "context", "get", "bot-a", "market") == {"trend": "down"}
    assert "down" in shown(env, "context", "get", "bot-a", "market")
    path = tmp_path / "ctx.json"
    path.write_text('{"from": "file"}')
    agents_cli(env, "context", "set", "bot-a", "session", "--data-file", str(path))
    assert agents_cli(env, "context", "get", "bot-a", "session") == {"from": "file"}
    assert_refused(invoke(env, "agents", "context", "get", "bot-a", "other"), "no context", 6)
    assert_refused(
        invoke(env, "agents", "context", "set", "ghost", "x", "--data", "{}"), "not registered", 6
    )
    assert_refused(
        invoke(env, "agents", "context", "set", "bot-a", "x", "--data", "{}", "--ttl", "0"),
        "ttl_seconds",
        5,
    )
    low = agents_cli(env, "memory", "add", "bot-a", "fact", "BTC halving", "--importance", "0.2")
    agents_cli(env, "memory", "add", "bot-a", "lesson", "cut losses", "--importance", "0.9")
    agents_cli(env, "memory", "add", "bot-a", "lesson", "be patient", "--key", "p")
    keyed = agents_cli(env, "memory", "add", "bot-a", "lesson", "be very patient", "--key", "p")
    recalled = agents_cli(env, "memory", "recall", "bot-a")
    assert [m["content"] for m in recalled] == ["cut losses", "be very patient", "BTC halving"]
    assert recalled[-1]["id"] == low["id"] and recalled[1]["id"] == keyed["id"]
    assert [m["access_count"] for m in agents_cli(env, "memory", "recall", "bot-a")] == [2, 2, 2]
    only = agents_cli(env, "memory", "recall", "bot-a", "--type", "lesson", "--min-importance",
                      "0.6")  # fmt: skip
    assert [m["content"] for m in only] == ["cut losses"]
    assert "cut losses" in shown(env, "memory", "recall", "bot-a")
    bounded = {"CRYPTOTRADING_AGENT_MEMORY_LIMIT": "2"}
    invoke(env, "agents", "memory", "add", "bot-a", "fact", "new", "--json", env=bounded, code=0)
    kept = [m["content"] for m in agents_cli(env, "memory", "recall", "bot-a")]
    assert sorted(kept) == ["cut losses", "new"]  # the least relevant other was evicted
    assert_refused(
        invoke(env, "agents", "memory", "add", "bot-a", "t", "x", "--importance", "2"),
        "importance",
        5,
    )


def _leaves(command: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    children = getattr(command, "commands", None)
    if not children:
        return [(path, command)]
    return [leaf for name, child in children.items() for leaf in _leaves(child, (*path, name))]


def test_every_agents_command_has_json() -> None:
    group = typer.main.get_command(app).commands["agents"]  # type: ignore[attr-defined]
    leaves = _leaves(group, ("agents",))
    assert len(leaves) >= 25
    for path, command in leaves:
        flags = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert "--json" in flags, path
    names = {" ".join(path) for path, _ in leaves}
    assert {"agents run", "agents dead-letters redrive", "agents memory recall"} <= names
