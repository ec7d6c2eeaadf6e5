"""Fuzz ``services``: agent ids, configs and message payloads (both backends), the
Fear & Greed CSV import and the code scanner (SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as s
from tests.fuzz.harness import SQLITE_ONLY, Fuzzer, fuzz_settings, write

pytestmark = pytest.mark.fuzz


@pytest.fixture
def agents(fuzzer: Fuzzer) -> Fuzzer:
    """Two registered agents, so a send reaches the payload checks and the write."""
    for agent in ("bot-a", "bot-b"):
        fuzzer.ok(["services", "agents", "register", agent, "--type", "trader"])
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
    args = ["services", "agents", "send", f"--payload={payload}", f"--type={message_type}"]
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
    args = ["services", "agents", "register", f"--type={agent_type}", "--json"]
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
    mode=st.sampled_from([[], ["--ack"], ["--peek"]]),
    message=s.any_text,
)
def test_agents_inbox_and_ack(
    agents: Fuzzer, agent: str, limit: str, mode: list[str], message: str
) -> None:
    agents.ok(["services", "agents", "send", "bot-a", "bot-b", "--payload", '{"n": 1}'])
    agents.run(["services", "agents", "inbox", f"--limit={limit}", *mode, "--", agent])
    agents.run(["services", "agents", "ack", "--json", "--", message])


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
