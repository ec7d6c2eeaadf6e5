"""Fuzz ``agents`` (ids, configs and message payloads on both backends; receiving and
settling on SQLite) and ``services``: the Fear & Greed CSV import and the code scanner
(SQLite). tests/agents/test_cli_hostile.py fuzzes every ``agents`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as s
from tests.fuzz.harness import SQLITE_ONLY, Fuzzer, fuzz_settings, write

pytestmark = pytest.mark.fuzz


@pytest.fixture
def agents(fuzzer: Fuzzer) -> Fuzzer:
    """Two registered, connected agents, so a send reaches the payload checks and the write."""
    for agent in ("bot-a", "bot-b"):
        fuzzer.ok(["agents", "register", agent, "--type", "trader"])
    fuzzer.ok(["agents", "connect", "bot-a", "bot-b"])
    return fuzzer


@fuzz_settings()
@given(
    payload=s.json_text,
    sender=st.one_of(st.just("bot-a"), s.any_text),
    receiver=st.one_of(st.just("bot-b"), s.any_text),
    message_type=st.one_of(st.just("message"), s.any_text),
    priority=st.one_of(st.just("0"), s.integers),
    correlation=st.one_of(st.none(), s.any_text),
)
def test_agents_send(
    agents: Fuzzer,
    payload: str,
    sender: str,
    receiver: str,
    message_type: str,
    priority: str,
    correlation: str | None,
) -> None:
    args = ["agents", "send", f"--payload={payload}", f"--type={message_type}"]
    args += [f"--priority={priority}", "--json"]
    if correlation is not None:
        args.append(f"--correlation-id={correlation}")
    agents.run([*args, "--", sender, receiver])


@fuzz_settings()
@given(
    agent=s.any_text,
    agent_type=s.any_text,
    name=st.one_of(st.none(), s.any_text),
    capabilities=st.lists(s.any_text, max_size=3),
    endpoint=st.one_of(st.none(), s.any_text),
    config=st.one_of(st.none(), s.json_text),
)
def test_agents_register(
    fuzzer: Fuzzer,
    agent: str,
    agent_type: str,
    name: str | None,
    capabilities: list[str],
    endpoint: str | None,
    config: str | None,
) -> None:
    args = ["agents", "register", f"--type={agent_type}", "--json"]
    args += [f"--capability={c}" for c in capabilities]
    for option, value in (("--name", name), ("--endpoint", endpoint), ("--config", config)):
        if value is not None:
            args.append(f"{option}={value}")
    fuzzer.run([*args, "--", agent])


@SQLITE_ONLY
@fuzz_settings()
@given(
    agent=st.one_of(st.just("bot-b"), s.any_text),
    limit=s.integers,
    lease=st.one_of(st.just("30"), s.numbers),
    status=st.one_of(st.none(), st.sampled_from(["pending", "delivered"]), s.any_text),
    settle=st.sampled_from(["ack", "nack"]),
    message=st.one_of(st.none(), s.any_text),
    receipt=st.one_of(st.none(), s.any_text),
)
def test_agents_receive_and_settle(
    agents: Fuzzer,
    agent: str,
    limit: str,
    lease: str,
    status: str | None,
    settle: str,
    message: str | None,
    receipt: str | None,
) -> None:
    """Receive (no wait: the long-poll is fuzzed in tests/agents), list, then ack or
    nack a hostile or the received message id with a hostile or no receipt."""
    agents.ok(["agents", "send", "bot-a", "bot-b", "--payload", '{"n": 1}'])
    got = agents.run(["agents", "receive", f"--limit={limit}", f"--lease={lease}", "--json",
                      "--", agent])  # fmt: skip
    listing = ["agents", "messages", "--json"] + ([] if status is None else [f"--status={status}"])
    agents.run([*listing, "--", agent])
    received = json.loads(got.stdout) if got.exit_code == 0 else []
    target = message if message is not None or not received else received[0]["message_id"]
    args = ["agents", settle, "--json"] + (["--reason=fuzz"] if settle == "nack" else [])
    if receipt is not None:
        args.append(f"--receipt={receipt}")
    agents.run([*args, "--", target or "none"])


@SQLITE_ONLY
@fuzz_settings()
@given(
    content=s.file_bytes(st.one_of(s.csv_text, s.any_text)),
    suffix=s.suffixes,
    symbol=st.one_of(st.just("BTC"), s.any_text),
)
def test_sentiment_import(fuzzer: Fuzzer, content: bytes, suffix: str, symbol: str) -> None:
    path = write(fuzzer.workdir, "fng" + suffix, content)
    fuzzer.run(["services", "sentiment", "import", f"--symbol={symbol}", "--json", "--", str(path)])


_PYTHON = st.one_of(
    st.sampled_from(
        [
            "def f(x):\n    return x\n",
            "if x:\n" * 200 + "    pass\n",
            "(" * 500 + ")" * 500,
            "x = 1\x00\n",
            "def f(:\n",
            "# -*- coding: latin-1 -*-\nx = '\xe9'\n",
            "# -*- coding: bogus -*-\n",
        ]
    ),
    s.any_text,
)


@SQLITE_ONLY
@fuzz_settings(0.5)
@given(
    content=s.file_bytes(_PYTHON),
    name=st.sampled_from(["m.py", "pkg/m.py", "m.txt", "bad\udcffname.py", "\n.py"]),
    threshold=s.integers,
    top=s.integers,
    other_root=st.one_of(st.none(), s.any_text),
)
def test_code_scan(
    fuzzer: Fuzzer,
    tmp_path: Path,
    content: bytes,
    name: str,
    threshold: str,
    top: str,
    other_root: str | None,
) -> None:
    root = tmp_path / "src"
    try:
        write(root, name, content)
    except (OSError, UnicodeEncodeError):
        write(root, "m.py", content)
    args = ["services", "code", "scan", f"--threshold={threshold}", f"--top={top}", "--json"]
    fuzzer.run([*args, "--", str(root) if other_root is None else other_root])
