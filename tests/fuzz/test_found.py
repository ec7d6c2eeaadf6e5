"""The cases the fuzz suite found, pinned: each failed (traceback) before its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from cryptotrading.models.code import CodeFile
from cryptotrading.stores import Stores
from tests.fuzz.harness import SQLITE_ONLY, Fuzzer, write

pytestmark = pytest.mark.fuzz


def _fails(fuzzer: Fuzzer, args: list[str], code: int = 5, **kwargs: object) -> str:
    result = fuzzer.run(args, **kwargs)  # type: ignore[arg-type]
    assert result.exit_code == code, result.output
    assert "error: " in result.stderr
    return result.stderr


@pytest.mark.parametrize(
    "payload", ['{"x": ' + "9" * 5000 + "}", "[" * 100_000 + "]" * 100_000, '{"x": 1e400}']
)
def test_json_option_unusable(seeded: Fuzzer, payload: str) -> None:
    """A 5000-digit number (ValueError), 100k nested lists (RecursionError), and a
    number beyond float64 (inf, not storable as JSON) are named errors."""
    seeded.ok(["agents", "register", "a", "--type", "t"])
    seeded.ok(["agents", "register", "b", "--type", "t"])
    seeded.ok(["agents", "connect", "a", "b"])
    _fails(seeded, ["agents", "send", "a", "b", f"--payload={payload}"])
    analyze = ["decisions", "analyze", "--symbol=BTC/USDT", "--model=m", "--type=t"]
    _fails(seeded, [*analyze, "--signal=s", f"--payload={payload}"])


@SQLITE_ONLY
def test_sentiment_file_not_utf8(fuzzer: Fuzzer) -> None:
    path = write(fuzzer.workdir, "fng.csv", b"\xff\xfe2\x000\x00")
    assert "not a UTF-8 CSV" in _fails(fuzzer, ["services", "sentiment", "import", str(path)])


@SQLITE_ONLY
def test_code_scan_undecodable_file_name(fuzzer: Fuzzer, tmp_path: Path) -> None:
    """A file name with bytes that are not UTF-8 is stored with ``\\xNN`` escapes."""
    root = tmp_path / "src"
    write(root, "bad\udcffname.py", b"x = 1\n")
    result = fuzzer.run(["services", "code", "scan", str(root), "--json"])
    assert result.exit_code == 0, result.output
    with Stores(fuzzer.settings) as stores, stores.engine(stores.app).connect() as connection:
        paths = connection.execute(select(CodeFile.file_path)).scalars().all()
    assert [p.rsplit("/", 1)[1] for p in paths] == ["bad\\xffname.py"]


@SQLITE_ONLY
@pytest.mark.parametrize(
    "args",
    [
        ["decisions", "list", "--symbol=\udcff\udc80"],  # lone surrogates (argv bytes)
        ["decisions", "execute", "--", str(2**64)],  # beyond int64
        ["decisions", "cancel", "--", str(2**63)],
        ["orders", "list", "--symbol=BTC/\udcffUSDT"],
    ],
)
def test_values_the_driver_cannot_bind(seeded: Fuzzer, args: list[str]) -> None:
    assert "cannot be stored or looked up" in _fails(seeded, args)


@SQLITE_ONLY
@pytest.mark.parametrize(
    "extra",
    [
        ["--horizon=60", f"--max-gap={2**63}"],
        ["--horizon=" + "9" * 400],
        [f"--horizon={2**40}", "--", "1"],
    ],
)
def test_evaluate_minutes_out_of_range(seeded: Fuzzer, extra: list[str]) -> None:
    assert "number of minutes" in _fails(seeded, ["decisions", "evaluate", *extra])


@SQLITE_ONLY
@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_time_outside_calendar_in_utc(seeded: Fuzzer, at: str) -> None:
    order = seeded.facts["order_id"]
    message = _fails(seeded, ["orders", "fill", order, "--price=100", "--amount=1", f"--at={at}"])
    assert "outside the calendar" in message


@SQLITE_ONLY
@pytest.mark.parametrize("command", [["users", "login", "--", "alice"], ["vault", "add"]])
def test_stdin_not_utf8(seeded: Fuzzer, command: list[str]) -> None:
    args = [*command, "--user=alice", "--service=kraken"] if command[0] == "vault" else command
    assert "not UTF-8 text" in _fails(seeded, args, input=b"\xb8\xff\n\xe6\n")


@SQLITE_ONLY
@pytest.mark.parametrize("command", ["show", "gaps", "panel", "export"])
@pytest.mark.parametrize("bound", ["--end=0001-01-01", "--start=9999-01-01"])
def test_market_time_beyond_pandas(fuzzer: Fuzzer, command: str, bound: str) -> None:
    """Times outside pandas' 1677..2262 nanosecond range were OverflowError tracebacks
    (fixed in the market code, 9c24be8; found here first)."""
    rows = [[1_609_459_200_000 + i * 3_600_000, 100.0, 101.0, 99.0, 100.5, 10.0] for i in range(3)]
    path = write(fuzzer.workdir, "c.json", json.dumps(rows).encode())
    fuzzer.ok(["market", "import", str(path), "-s", "BTC/USDT", "-t", "1h"])
    out = str(fuzzer.workdir / "o.csv")
    target = ["BTC/USDT"] if command != "export" else ["--symbol=BTC/USDT", out]
    _fails(fuzzer, ["market", command, bound, *target])
