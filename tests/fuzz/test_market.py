"""Fuzz ``market``: candle and trade files (CSV, JSON, gzip, Parquet/Feather bytes)
on both backends; symbols, timeframes, times, output paths and ages on SQLite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz import strategies as s
from tests.fuzz.harness import SQLITE_ONLY, Fuzzer, Row, fuzz_settings, options, write

pytestmark = pytest.mark.fuzz

TIMEFRAMES = st.one_of(st.sampled_from(["1m", "1h", "1d", "1M", "5m"]), s.any_text)
FORMATS = s.maybe(
    st.one_of(st.sampled_from(["csv", "json", "json.gz", "feather", "parquet"]), s.any_text)
)


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value)
    except (ValueError, TypeError, RecursionError):
        return "[]"


def failed_jobs(table: str, row: Row) -> bool:
    """A failed import is recorded as a failed job (by design); its candles are not."""
    return table == "data_ingestion_jobs" and row.get("status") in ("failed", "cancelled")


CANDLE_FILES = st.one_of(
    s.almost_valid_candles.map(s.encode),
    s.file_bytes(st.one_of(s.almost_valid_candles, s.ohlcv_rows.map(_dumps), s.csv_text)),
    s.file_bytes(s.json_text),
)
TRADE_FILES = st.one_of(
    s.almost_valid_trades.map(s.encode),
    s.file_bytes(st.one_of(s.almost_valid_trades, s.trades_json.map(_dumps), s.csv_text)),
    s.file_bytes(s.json_text),
)

IMPORT = s.variants(
    {"symbol": "BTC/USDT", "timeframe": "1h", "exchange": None, "format": None, "batch_size": None},
    {
        "symbol": s.symbols,
        "timeframe": TIMEFRAMES,
        "exchange": s.maybe(s.any_text),
        "format": FORMATS,
        "batch_size": s.maybe(s.integers),
    },
)


VALID_IMPORT = {"symbol": "BTC/USDT", "timeframe": "1h"}
# the cases of issue 10, always run
ISSUE_CANDLES = [
    ("[[1609459200000, " + "9" * 400 + ", 2, 1, 1.5, 1]]", ".json"),  # OverflowError
    ("[" * 100_000 + "]" * 100_000, ".json"),  # RecursionError
    ("timestamp,open,high,low,close,volume\n1e300,1,2,1,1.5,1\n", ".csv"),
    ("timestamp,open,high,low,close,volume\n9e18,1,2,1,1.5,1\n", ".csv"),
    ("timestamp,open,high,low,close,volume\n-3600000,1,2,1,1.5,1\n", ".csv"),
    ("timestamp,open,open,high,low,close,volume\n1609459200000,1,1,2,1,1.5,1\n", ".csv"),
    ("", ".json"),
    ("timestamp,open,high,low,close,volume\n", ".csv"),
]


@fuzz_settings()
@given(content=CANDLE_FILES, suffix=s.suffixes, values=IMPORT)
@example(
    content=s.gzip_bytes(b"[[1609459200000,1,2,1,1.5,1]]")[:-9],
    suffix=".json.gz",
    values=VALID_IMPORT,
)
@example(content=b"\x1f\x8b\x08\x00corrupt", suffix=".json.gz", values=VALID_IMPORT)
@example(
    content=b"[[1609459200000,1,2,1,1.5,1]]",
    suffix=".json",
    values={**VALID_IMPORT, "symbol": "BTC/\nUSDT"},
)
@example(
    content=b"[[1609459200000,1,2,1,1.5,1]]", suffix=".json", values={**VALID_IMPORT, "symbol": " "}
)
def test_import(fuzzer: Fuzzer, content: bytes, suffix: str, values: dict[str, str | None]) -> None:
    path = write(fuzzer.workdir, "candles" + suffix, content)
    args = ["market", "import", "--json", *options(**values), "--", str(path)]
    fuzzer.run(args, ignore=failed_jobs)


@pytest.mark.parametrize(("text", "suffix"), ISSUE_CANDLES)
def test_import_issue_cases(fuzzer: Fuzzer, text: str, suffix: str) -> None:
    path = write(fuzzer.workdir, "candles" + suffix, text.encode())
    result = fuzzer.run(["market", "import", "-s", "BTC/USDT", "-t", "1h", "--", str(path)])
    assert result.exit_code != 0, result.output


@fuzz_settings()
@given(content=TRADE_FILES, suffix=s.suffixes, values=IMPORT)
def test_import_trades(
    fuzzer: Fuzzer, content: bytes, suffix: str, values: dict[str, str | None]
) -> None:
    path = write(fuzzer.workdir, "trades" + suffix, content)
    if values["timeframe"] == "1h":
        values["timeframe"] = "1m"
    args = ["market", "import-trades", "--json", *options(**values), "--", str(path)]
    fuzzer.run(args, ignore=failed_jobs)


OUTPUT_NAMES = st.one_of(
    st.sampled_from(
        [
            "out.csv",
            "out.parquet",
            "out.xml",
            "out",
            "dir/out.csv",
            "/nonexistent/dir/out.csv",
            "/dev/full",
            "/proc/version",
            ".",
            "",
        ]
    ),
    s.any_text.map(lambda t: t + ".csv"),
)

SERIES = s.variants(
    {"symbol": "BTC/USDT", "timeframe": None, "exchange": None, "start": None, "end": None},
    {
        "symbol": s.symbols,
        "timeframe": s.maybe(TIMEFRAMES),
        "exchange": s.maybe(s.any_text),
        "start": s.maybe(s.times),
        "end": s.maybe(s.times),
    },
)


VALID_SERIES = {
    "symbol": "BTC/USDT",
    "timeframe": None,
    "exchange": None,
    "start": None,
    "end": None,
}


@SQLITE_ONLY
@fuzz_settings()
@given(name=OUTPUT_NAMES, values=SERIES, fmt=s.maybe(s.any_text))
@example(name="/nonexistent/dir/out.csv", values=VALID_SERIES, fmt=None)
@example(name="/dev/full", values=VALID_SERIES, fmt=None)
@example(name="/proc/version", values=VALID_SERIES, fmt=None)
@example(name=".", values=VALID_SERIES, fmt=None)
@example(name="out.xml", values=VALID_SERIES, fmt=None)
def test_export(
    seeded: Fuzzer, tmp_path: Path, name: str, values: dict[str, str | None], fmt: str | None
) -> None:
    out = tmp_path / "exports"
    out.mkdir(exist_ok=True)
    target = Path(name) if name.startswith("/") else out / name
    args = ["market", "export", "--json", *options(**values, format=fmt), "--", str(target)]
    untouched = [target] if name not in ("/dev/full", "/proc/version", ".", "") else []
    seeded.run(args, untouched=untouched)


@SQLITE_ONLY
@fuzz_settings()
@given(
    command=st.sampled_from(["show", "gaps", "panel"]),
    values=SERIES,
    limit=s.maybe(s.integers),
    output=s.maybe(st.one_of(st.sampled_from(["table", "csv", "json"]), s.any_text)),
    column=s.maybe(s.any_text),
)
def test_read_commands(
    seeded: Fuzzer,
    command: str,
    values: dict[str, str | None],
    limit: str | None,
    output: str | None,
    column: str | None,
) -> None:
    symbol = values.pop("symbol") or ""
    extra: dict[str, str | None] = {}
    if command != "gaps":
        extra = {"limit": limit, "output": output}
    if command == "panel":
        extra["column"] = column
    seeded.run(["market", command, *options(**values, **extra), "--", symbol])


@SQLITE_ONLY
@fuzz_settings(0.5)
@example(
    age="99999999999d",
    dry_run=True,
    quality={"symbol": None, "timeframe": None, "outlier_z": None},
    aggregate={"symbol": "BTC/USDT", "max_age": None, "outlier_pct": None},
)
@given(
    age=st.one_of(st.sampled_from(["90d", "12w", "99999999999d", "0d", "-1d"]), s.any_text),
    dry_run=st.booleans(),
    quality=s.variants(
        {"symbol": None, "timeframe": None, "outlier_z": None},
        {
            "symbol": s.maybe(s.symbols),
            "timeframe": s.maybe(TIMEFRAMES),
            "outlier_z": s.maybe(s.numbers),
        },
    ),
    aggregate=s.variants(
        {"symbol": "BTC/USDT", "max_age": None, "outlier_pct": None},
        {"symbol": s.symbols, "max_age": s.maybe(s.numbers), "outlier_pct": s.maybe(s.numbers)},
    ),
)
def test_maintenance_commands(
    seeded: Fuzzer,
    tmp_path: Path,
    age: str,
    dry_run: bool,
    quality: dict[str, str | None],
    aggregate: dict[str, str | None],
) -> None:
    archive = ["--dry-run"] if dry_run else [f"--archive-dir={tmp_path / 'archive'}"]
    seeded.run(["market", "archive", "--json", f"--older-than={age}", *archive])
    seeded.run(["market", "quality", "--json", *options(**quality)])
    symbol = aggregate.pop("symbol") or ""
    seeded.run(["market", "aggregate", "--json", *options(**aggregate), "--", symbol])
