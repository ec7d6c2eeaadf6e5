"""Hostile input to ``cryptotrading agents``: payload JSON text (inline, in a file,
on stdin), ids and free text in every position, numbers at the edges, and workflow
files from almost valid to noise. Each run must end with exit 0 or a documented code,
no traceback, and -- when it fails -- a named error (``error:`` + ``hint:``) and every
table as it was (the fuzz harness's property, on both backends)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import Result

from cryptotrading import agents
from cryptotrading.errors import CryptotradingError
from tests.fuzz import strategies as s
from tests.fuzz.harness import Fuzzer, fuzz_settings
from tests.helpers import SettingsFactory

pytestmark = pytest.mark.fuzz

DEFINITION = {
    "inputs": ["symbol"],
    "steps": [
        {"id": "analyse", "agent": "bot-b", "input": {"symbol": "$input.symbol"}},
        {"id": "risk", "agent": "bot-b", "input": {"signal": "$steps.analyse.signal"}},
    ],
}


@pytest.fixture
def fuzzer(make_settings: SettingsFactory, tmp_path: Path) -> Iterator[Fuzzer]:
    """Two connected agents ``bot-a`` and ``bot-b``, a delivered and a dead message, a
    workflow ``trade`` with a running execution, a context and a memory; the ids made
    are in ``facts`` (``delivered``, ``receipt``, ``dead``, ``execution``)."""
    work = tmp_path / "work"
    work.mkdir()
    fuzz = Fuzzer(make_settings("three"), work)
    for agent in ("bot-a", "bot-b"):
        fuzz.ok(["agents", "register", agent, "--type", "trader"])
    fuzz.ok(["agents", "connect", "bot-a", "bot-b"])

    def made(*args: str) -> Any:
        return json.loads(fuzz.ok(["agents", *args, "--json"]).stdout)

    made("send", "bot-a", "bot-b", "--payload", '{"n": 1}', "--max-attempts", "1")
    (dead,) = made("receive", "bot-b")
    made("nack", dead["message_id"], "--reason", "seeded")
    made("send", "bot-a", "bot-b", "--payload", '{"n": 2}')
    (delivered,) = made("receive", "bot-b", "--lease", "3600")
    path = work / "trade.json"
    path.write_text(json.dumps(DEFINITION))
    made("workflows", "define", "trade", "--file", str(path))
    execution = made("executions", "start", "trade", "--input", '{"symbol": "BTC/USDT"}')
    made("context", "set", "bot-a", "market", "--data", '{"trend": "up"}')
    made("memory", "add", "bot-a", "lesson", "cut losses", "--key", "k")
    fuzz.facts.update(
        delivered=delivered["message_id"],
        receipt=delivered["receipt"],
        dead=dead["message_id"],
        execution=execution["execution_id"],
    )
    yield fuzz
    fuzz.close()


def check(result: Result) -> None:
    """A failure is a named error (a usage error is click's own message)."""
    if result.exit_code not in (0, 2):
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines and lines[0].startswith("error: "), result.output
        assert lines[-1].startswith("hint: "), result.output


# ----------------------------------------------------------------------------- payloads

VIA = st.sampled_from(["inline", "file", "stdin"])


def _decoded(content: bytes) -> Any:
    """What the payload bytes decode to (json.loads on UTF-8), or an exception."""
    try:
        return json.loads(content.decode("utf-8-sig"))
    except (ValueError, RecursionError) as exc:
        return exc


@fuzz_settings()
@given(text=s.json_text, raw=s.file_bytes(s.json_text), via=VIA)
def test_hostile_payload(fuzzer: Fuzzer, text: str, raw: bytes, via: str) -> None:
    args = ["agents", "send", "--json"]
    stdin: bytes | None = None
    if via == "inline":
        args.append(f"--payload={text}")
    elif via == "file":
        path = fuzzer.workdir / "payload.json"
        path.write_bytes(raw)
        args.append(f"--payload-file={path}")
    else:
        args.append("--payload-file=-")
        stdin = raw
    result = fuzzer.run([*args, "--", "bot-a", "bot-b"], input=stdin)
    check(result)
    if result.exit_code == 0:
        sent = json.loads(text) if via == "inline" else _decoded(raw)
        assert json.loads(result.stdout)["payload"] == sent
    else:
        assert result.exit_code == 5, result.output  # a payload problem is a ValidationError


@fuzz_settings()
@given(size=st.integers(min_value=0, max_value=300), limit=st.sampled_from(["2", "64", "200"]))
def test_payload_size_limit(fuzzer: Fuzzer, size: int, limit: str) -> None:
    """A payload over CRYPTOTRADING_A2A_MAX_PAYLOAD_BYTES (compact JSON) is refused."""
    payload = json.dumps({"x": "y" * size})
    compact = len(json.dumps({"x": "y" * size}, separators=(",", ":")))
    result = fuzzer.run(
        ["agents", "send", "bot-a", "bot-b", "--payload", payload],
        env={"CRYPTOTRADING_A2A_MAX_PAYLOAD_BYTES": limit},
    )
    check(result)
    assert result.exit_code == (0 if compact <= int(limit) else 5), result.output


# ----------------------------------------------------------------------- ids and text

Command = Callable[[dict[str, str], list[str]], list[str]]


def _commands() -> dict[str, Command]:
    """Commands with their free-text positions filled from ``t`` (hostile text) and
    their ids from ``f`` (the seeded facts); positionals follow ``--``."""

    def c(build: Callable[[dict[str, str], list[str]], list[str]]) -> Command:
        return build

    return {
        "register": c(lambda f, t: ["register", f"--type={t[1]}", f"--name={t[2]}",
                                    f"--capability={t[3]}", f"--config={t[4]}", "--", t[0]]),
        "show": c(lambda f, t: ["show", "--", t[0]]),
        "heartbeat": c(lambda f, t: ["heartbeat", "--", t[0]]),
        "deactivate": c(lambda f, t: ["deactivate", "--", t[0]]),
        "list": c(lambda f, t: ["list", f"--capability={t[0]}"]),
        "connect": c(lambda f, t: ["connect", f"--protocol={t[2]}", "--", t[0], t[1]]),
        "disconnect": c(lambda f, t: ["disconnect", f"--protocol={t[2]}", "--", t[0], t[1]]),
        "connections": c(lambda f, t: ["connections", "--", t[0]]),
        "send": c(lambda f, t: ["send", "--payload={}", f"--type={t[2]}",
                                f"--correlation-id={t[3]}", f"--group={t[4]}",
                                f"--idempotency-key={t[5]}", "--", t[0], t[1]]),
        "send-ids": c(lambda f, t: ["send", "--payload={}", "--", "bot-a", t[0]]),
        "receive": c(lambda f, t: ["receive", "--", t[0]]),
        "messages": c(lambda f, t: ["messages", f"--status={t[1]}", "--", t[0]]),
        "ack": c(lambda f, t: ["ack", f"--receipt={t[1]}", "--", t[0]]),
        "ack-receipt": c(lambda f, t: ["ack", f"--receipt={t[0]}", "--", f["delivered"]]),
        "nack": c(lambda f, t: ["nack", f"--reason={t[1]}", f"--receipt={f['receipt']}",
                                "--", f["delivered"]]),
        "nack-id": c(lambda f, t: ["nack", f"--reason={t[1]}", "--", t[0]]),
        "extend": c(lambda f, t: ["extend", f"--receipt={t[1]}", "--seconds=5", "--", t[0]]),
        "dead-show": c(lambda f, t: ["dead-letters", "show", "--", t[0]]),
        "dead-list": c(lambda f, t: ["dead-letters", "list", f"--agent={t[0]}"]),
        "redrive": c(lambda f, t: ["dead-letters", "redrive", "--", f["dead"], t[0]]),
        "redrive-agent": c(lambda f, t: ["dead-letters", "redrive", f"--agent={t[0]}"]),
        "workflow-show": c(lambda f, t: ["workflows", "show", "--", t[0]]),
        "start": c(lambda f, t: ["executions", "start", f"--input={t[1]}", "--", t[0]]),
        "execution-show": c(lambda f, t: ["executions", "show", "--", t[0]]),
        "executions": c(lambda f, t: ["executions", "list", f"--workflow={t[0]}",
                                      f"--status={t[1]}"]),
        "cancel": c(lambda f, t: ["executions", "cancel", f"--reason={t[1]}", "--", t[0]]),
        "cancel-reason": c(lambda f, t: ["executions", "cancel", f"--reason={t[0]}", "--",
                                         f["execution"]]),
        "run": c(lambda f, t: ["run", "--once", f"--runner-id={t[0]}"]),
        "context-set": c(lambda f, t: ["context", "set", f"--data={t[2]}", "--", t[0], t[1]]),
        "context-get": c(lambda f, t: ["context", "get", "--", t[0], t[1]]),
        "memory-add": c(lambda f, t: ["memory", "add", f"--key={t[3]}", "--", t[0], t[1],
                                      t[2]]),
        "memory-text": c(lambda f, t: ["memory", "add", f"--key={t[1]}", "--", "bot-a",
                                       "lesson", t[0]]),
        "recall": c(lambda f, t: ["memory", "recall", f"--type={t[1]}", "--", t[0]]),
    }  # fmt: skip


COMMANDS = _commands()
#: A hostile value, or a valid one so that the other positions are reached too.
TEXT = st.one_of(s.any_text, st.sampled_from(["bot-a", "bot-b", "trade", "market", "lesson"]))


@fuzz_settings(2.0)
@given(name=st.sampled_from(sorted(COMMANDS)), texts=st.lists(TEXT, min_size=6, max_size=6))
def test_hostile_ids_and_text(fuzzer: Fuzzer, name: str, texts: list[str]) -> None:
    args = COMMANDS[name](fuzzer.facts, texts)
    check(fuzzer.run(["agents", *args, "--json"]))


NUMBER = st.one_of(s.numbers, st.sampled_from(["0", "0.5", "1", "2", "60"]))


@fuzz_settings(2.0)
@given(
    option=st.sampled_from(
        [
            ("send", "--ttl"),
            ("send", "--delay"),
            ("send", "--priority"),
            ("send", "--max-attempts"),
            ("receive", "--lease"),
            ("receive", "--limit"),
            ("receive", "--wait"),
            ("nack", "--delay"),
            ("extend", "--seconds"),
            ("messages", "--limit"),
            ("dead-letters list", "--limit"),
            ("executions list", "--limit"),
            ("workflows show", "--version"),
            ("context set", "--ttl"),
            ("memory add", "--importance"),
            ("memory recall", "--limit"),
            ("memory recall", "--min-importance"),
            ("run", "--idle"),
        ]
    ),
    value=NUMBER,
)
def test_hostile_numbers(fuzzer: Fuzzer, option: tuple[str, str], value: str) -> None:
    command, flag = option
    f = fuzzer.facts
    if flag == "--wait":  # a valid wait long-polls: keep it short
        value = value if not _finite_over(value, 0.2) else "0.01"
    positional = {
        "send": ["--payload={}", "--", "bot-a", "bot-b"],
        "receive": ["--", "bot-b"],
        "nack": ["--reason=r", f"--receipt={f['receipt']}", "--", f["delivered"]],
        "extend": [f"--receipt={f['receipt']}", "--", f["delivered"]],
        "messages": ["--", "bot-b"],
        "workflows show": ["--", "trade"],
        "context set": ["--data={}", "--", "bot-a", "market"],
        "memory add": ["--", "bot-a", "lesson", "text"],
        "memory recall": ["--", "bot-a"],
        "run": ["--once"],
    }.get(command, [])
    check(fuzzer.run(["agents", *command.split(), f"{flag}={value}", *positional, "--json"]))


def _finite_over(text: str, bound: float) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return value == value and value > bound


# --------------------------------------------------------------------- workflow files

STEP_IDS = st.one_of(st.sampled_from(["a", "b", "c", "d"]), s.any_text)
REFERENCE = st.one_of(
    st.builds("$steps.{}.{}".format, STEP_IDS, st.sampled_from(["out", "x.y", ""])),
    st.builds("$input.{}".format, st.sampled_from(["symbol", "other", ""])),
    st.sampled_from(["$$literal", "$", "$other.x", "$steps", "$input"]),
    s.json_values,
)
STEP = st.fixed_dictionaries(
    {"id": STEP_IDS},
    optional={
        "agent": st.one_of(st.just("bot-b"), s.json_values),
        "capability": st.one_of(st.just("trade"), s.json_values),
        "input": st.one_of(st.dictionaries(st.sampled_from(["s", "t"]), REFERENCE), REFERENCE),
        "after": st.one_of(st.lists(STEP_IDS, max_size=3), s.json_values),
        "timeout_seconds": st.one_of(st.sampled_from([0, 0.001, 60, 1e9, -1]), s.json_values),
        "retry": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "max_attempts": st.one_of(st.sampled_from([0, 1, 3, 2.5, 101]), s.json_values),
                    "backoff_seconds": st.one_of(st.sampled_from([0, 1, -1, 1e9]), s.json_values),
                },
            ),
            s.json_values,
        ),
        "type": s.json_values,
        "unknown": s.json_values,
    },
)
DEFINITIONS = st.one_of(
    st.fixed_dictionaries(
        {"steps": st.lists(STEP, max_size=5)},
        optional={
            "inputs": st.one_of(st.just(["symbol"]), s.json_values),
            "result": st.one_of(st.dictionaries(st.just("r"), REFERENCE), s.json_values),
            "description": s.json_values,
            "extra": s.json_values,
        },
    ),
    s.json_values,
)


def _dumped(value: Any) -> bytes:
    try:
        return json.dumps(value).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return b"null"


def _accepted(content: bytes) -> bool:
    """Whether the library accepts the document the file holds (the CLI adds nothing)."""
    document = _decoded(content)
    if not isinstance(document, dict):
        return False
    try:
        agents.parse_workflow(document)
    except CryptotradingError:
        return False
    return True


@fuzz_settings(2.0)
@given(
    content=st.one_of(DEFINITIONS.map(_dumped), s.file_bytes(s.json_text)),
    workflow_id=st.one_of(st.just("w"), s.any_text),
    stdin=st.booleans(),
)
def test_hostile_workflow_file(
    fuzzer: Fuzzer, content: bytes, workflow_id: str, stdin: bool
) -> None:
    path = fuzzer.workdir / "definition.json"
    path.write_bytes(content)
    source = "-" if stdin else str(path)
    result = fuzzer.run(
        ["agents", "workflows", "define", f"--file={source}", "--json", "--", workflow_id],
        input=content if stdin else None,
    )
    check(result)
    if workflow_id == "w":
        assert (result.exit_code == 0) == _accepted(content), result.output
    if result.exit_code == 0:
        assert json.loads(result.stdout)["definition"] == _decoded(content)


@pytest.mark.parametrize(
    "content", [b'{"x": "\\ud800"}', b'{"steps": [{"id": "a", "agent": "\\udcff"}]}']
)
def test_definition_with_a_lone_surrogate(fuzzer: Fuzzer, content: bytes) -> None:
    """Found by test_hostile_workflow_file: parse encoded the definition and a lone
    surrogate was a UnicodeEncodeError traceback; it is refused by name now."""
    path = fuzzer.workdir / "definition.json"
    path.write_bytes(content)
    result = fuzzer.run(["agents", "workflows", "define", f"--file={path}", "--", "w"])
    check(result)
    assert result.exit_code == 5, result.output
