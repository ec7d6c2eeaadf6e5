"""Hostile files for ``market import`` / ``market import-trades`` (issue 10, findings
4 and 5), on both backends: each is refused with a named error and a hint, a
non-zero exit, no traceback, and every table's row count as before (no candle, no
``data_ingestion_jobs`` row claiming a completed 0-row job).

Also the Hypothesis properties of the readers: any bytes, JSON, CSV or numbers at the
edges of float64/int64 and of the calendar give data or a ValidationError, never
another exception; a gzip bomb is stopped at ``max_import_bytes`` without being
expanded in memory.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from cryptotrading.cli import app
from cryptotrading.errors import CryptotradingError, ValidationError
from cryptotrading.market import MarketStore
from cryptotrading.market.formats import FORMATS, read_candles_file
from cryptotrading.market.timeframes import parse_timeframe
from cryptotrading.market.trades import read_trades_file, trades_to_candles
from cryptotrading.market.validation import check_names, validate_candles
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import (
    SettingsFactory,
    assert_refused,
    load_rows,
    settings_env,
    table_counts,
)

runner = CliRunner()
HEADER = "timestamp,open,high,low,close,volume\n"
BIG = "9" * 400  # an integer far beyond float64
#: Rows of tables a failed command may touch: recorded slow queries and error logs.
END_TIMESTAMP = 4_102_444_800_000  # 2100-01-01T00:00:00Z: no candle at or after it


@pytest.fixture
def settings(make_settings: SettingsFactory, binance_dir: Path) -> Settings:
    """Three stores holding 48 real candles and one completed import job."""
    made = make_settings("three", slow_query_ms=1e9)
    with Stores(made) as stores:
        MarketStore(stores).write_ohlcv(
            load_rows(binance_dir / "BTC_USDT-1h.json")[:48], symbol="BTC/USDT", timeframe="1h"
        )
    good = binance_dir.parent / "basana_testdata" / "binance_btcusdt_day_2020.csv"
    assert cli(made, "market", "import", str(good), "-s", "ETH/USDT", "-t", "1d").exit_code == 0
    return made


def cli(settings: Settings, *args: str, **env: str) -> Result:
    return runner.invoke(
        app, list(args), env={**settings_env(settings), "CRYPTOTRADING_SLOW_QUERY_MS": "1e9", **env}
    )


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _candles_gz() -> bytes:
    return _gzip(
        json.dumps([[1609459200000 + i * 3_600_000, 1, 2, 0.5, 1, 1] for i in range(9)]).encode()
    )


def _corrupt_gz() -> bytes:
    """A gzip whose deflate stream is damaged mid-way (zlib.error)."""
    data = bytearray(_gzip(json.dumps([[1609459200000, 1.5, 2, 0.5, 1, 1]] * 500).encode()))
    data[30:40] = b"\xff" * 10
    return bytes(data)


def _csv(*rows: str) -> bytes:
    return (HEADER + "".join(f"{row}\n" for row in rows)).encode()


#: (case id, file content, --timeframe, message) for ``market import``.
IMPORT_CASES: list[tuple[str, bytes, str]] = [
    ("int-400-digits", f"[[{BIG},1,2,0.5,1,1]]".encode(), "cannot read"),
    ("int-400-digits-price", f"[[1609459200000,{BIG},2,0.5,1,1]]".encode(), "cannot read"),
    ("corrupt-gzip", _corrupt_gz(), "cannot read"),
    ("truncated-gzip", _candles_gz()[:25], "cannot read"),
    ("gzip-magic-only", b"\x1f\x8b" + b"not gzip at all", "cannot read"),
    ("deep-json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("ts-1e300", _csv("1e300,1,2,0.5,1,1"), "row 0"),
    ("ts-9e18", _csv("9000000000000000000,1,2,0.5,1,1"), "before 1970 or not before 2100"),
    ("ts-2**63", _csv("9223372036854775808,1,2,0.5,1,1"), "row 0"),
    ("ts-negative", _csv("-3600000,1,2,0.5,1,1"), "before 1970 or not before 2100"),
    ("ts-1960", _csv("1960-01-01,1,2,0.5,1,1"), "before 1970 or not before 2100"),
    ("ts-2100", _csv("2100-01-01,1,2,0.5,1,1"), "before 1970 or not before 2100"),
    ("ts-json-1e300", b"[[1e300,1,2,0.5,1,1]]", "row 0"),
    (
        "duplicated-column",
        (HEADER[:-1] + ",close\n1609459200000,1,2,0.5,1,1,3\n").encode(),
        "'close' appears more than once",
    ),
    (
        "duplicated-column-case",
        b"timestamp,open,high,low,close,volume,CLOSE\n1609459200000,1,2,0.5,1,1,3\n",
        "appears more than once",
    ),
    ("empty-file", b"", "no candles in"),
    ("blank-file", b" \n\r\n\t\n", "no candles in"),
    ("header-only", HEADER.encode(), "no candles in"),
    ("empty-json-list", b"[]", "no candles in"),
    ("empty-gzip", _gzip(b""), "no candles in"),
    ("binary-garbage", bytes(range(256)) * 8, "cannot read"),
    ("json-scalar", b"12345", "must have 6 columns"),
    ("json-object", b'{"candles": 1}', "must be a list"),
]


def _refused_each(
    settings: Settings, tmp_path: Path, command: str, cases: list[tuple[str, bytes, str]]
) -> None:
    """Run *command* on every case (one database for all: fast on PostgreSQL), then
    report every case that was not refused cleanly or changed a table."""
    before = table_counts(settings)
    failures = []
    for case, content, message in cases:
        path = tmp_path / f"{case}.dat"
        path.write_bytes(content)
        result = cli(settings, "market", command, str(path), "-s", "XRP/USDT", "-t", "1h")
        try:
            assert_refused(result, message)
            assert table_counts(settings) == before, "a table changed"
        except AssertionError as exc:
            failures.append(f"{case}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_import_hostile_files(settings: Settings, tmp_path: Path) -> None:
    _refused_each(settings, tmp_path, "import", IMPORT_CASES)


def _trades_csv(*rows: str) -> bytes:
    return ("timestamp,price,amount\n" + "".join(f"{row}\n" for row in rows)).encode()


TRADE_CASES: list[tuple[str, bytes, str]] = [
    ("int-400-digits", f"[[{BIG},1.5,2]]".encode(), "cannot parse timestamps"),
    (
        "int-400-digits-dict",
        f'[{{"timestamp":{BIG},"price":1.5,"amount":2}}]'.encode(),
        "cannot parse timestamps",
    ),
    ("price-400-digits", f"[[1609459200000,{BIG},2]]".encode(), "trade 0: price"),
    ("amount-400-digits", f"[[1609459200000,1.5,{BIG}]]".encode(), "trade 0: amount"),
    (
        "freqtrade-price-400-digits",
        f'[[1609459200000,"1","buy","x",{BIG},2,3]]'.encode(),
        "trade 0",
    ),
    ("corrupt-gzip", _corrupt_gz(), "cannot read"),
    ("deep-json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("ts-1e300", _trades_csv("1e300,1.5,2"), "row 0"),
    ("ts-9e18", _trades_csv("9000000000000000000,1.5,2"), "before 1970 or not before 2100"),
    ("ts-negative", _trades_csv("-3600000,1.5,2"), "before 1970 or not before 2100"),
    (
        "duplicated-column",
        b"timestamp,price,amount,price\n1609459200000,1.5,2,3\n",
        "'price' appears more than once",
    ),
    ("empty-file", b"", "no trades in"),
    ("header-only", b"timestamp,price,amount\n", "no trades in"),
    ("empty-json-list", b"[]", "no trades in"),
]


def test_import_trades_hostile_files(settings: Settings, tmp_path: Path) -> None:
    _refused_each(settings, tmp_path, "import-trades", TRADE_CASES)


def test_not_a_regular_file(settings: Settings, tmp_path: Path) -> None:
    """/dev/zero was reported as "no such file" (and --format json read it forever)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before = table_counts(settings)
    for command in ("import", "import-trades"):
        for path in (Path("/dev/zero"), fifo, tmp_path):
            for extra in ([], ["--format", "json"]):
                args = (str(path), "-s", "XRP/USDT", "-t", "1h", *extra)
                assert_refused(cli(settings, "market", command, *args), "not a regular file")
        missing = (str(tmp_path / "missing.csv"), "-s", "XRP/USDT", "-t", "1h")
        assert_refused(cli(settings, "market", command, *missing), "no such file", exit_code=6)
    assert table_counts(settings) == before


HOSTILE_SYMBOLS = [
    "",
    " ",
    "   ",
    "BTC/USDT\n",
    "BTC\nUSDT",
    "BTC/USDT\r",
    "\tBTC",
    "BTC\x00",
    "BTC\x1b[31m",
    " BTC/USDT",
    "BTC/USDT ",
    "BTC\u200b/USDT",
    "\u202eTDSU/CTB",
    "BTC\u2028USDT",
]


def test_symbol_blank_or_with_control_characters(settings: Settings, binance_dir: Path) -> None:
    before = table_counts(settings)
    path = binance_dir / "ETH_USDT-1h.json"
    for symbol in HOSTILE_SYMBOLS:
        for command in ("import", "import-trades"):
            result = cli(settings, "market", command, str(path), "-s", symbol, "-t", "1h")
            assert_refused(result, "invalid symbol")
    exchange = cli(
        settings, "market", "import", str(path), "-s", "ETH/USDT", "-t", "1h", "-e", "bin\nance"
    )
    assert_refused(exchange, "invalid exchange name")
    assert table_counts(settings) == before


def _bomb(path: Path, expanded: int) -> None:
    """A gzip of *expanded* bytes of JSON whitespace (about 1/1000 of that on disk)."""
    chunk = b" " * (1 << 20)
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(b"[")
        for _ in range(expanded // len(chunk)):
            out.write(chunk)
        out.write(b"]")


def test_gzip_bomb_stopped_at_max_import_bytes(settings: Settings, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.json.gz"
    _bomb(bomb, 64 << 20)
    assert bomb.stat().st_size < 1 << 20
    before = table_counts(settings)
    for command in ("import", "import-trades"):
        result = cli(
            settings,
            "market",
            command,
            str(bomb),
            "-s",
            "XRP/USDT",
            "-t",
            "1h",
            CRYPTOTRADING_MAX_IMPORT_BYTES="1000000",
        )
        assert_refused(result, "expands to more than 1,000,000 bytes (max_import_bytes)")
        assert "CRYPTOTRADING_MAX_IMPORT_BYTES" in result.stderr
    assert table_counts(settings) == before


def test_gzip_bomb_is_never_expanded_in_memory(tmp_path: Path) -> None:
    """Streaming: reading stops at the cap, so the peak allocation is about the cap,
    not the 64 MiB the bomb expands to."""
    bomb = tmp_path / "bomb.json.gz"
    _bomb(bomb, 64 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ValidationError, match="expands to more than"):
            read_candles_file(bomb, max_bytes=2 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak


@pytest.mark.parametrize("compressed", [False, True])
def test_max_import_bytes_boundary(tmp_path: Path, compressed: bool) -> None:
    """A file of exactly the cap is read; one byte more is refused (plain and gzip)."""
    content = json.dumps([[1609459200000, 1, 2, 0.5, 1, 1]]).encode()
    path = tmp_path / "c.json"
    path.write_bytes(_gzip(content) if compressed else content)
    assert len(read_candles_file(path, max_bytes=len(content))) == 1
    with pytest.raises(ValidationError, match="more than"):
        read_candles_file(path, max_bytes=len(content) - 1)


def test_csv_and_parquet_over_the_cap(tmp_path: Path, binance_dir: Path) -> None:
    rows = load_rows(binance_dir / "BTC_USDT-1h.json")
    csv_path = tmp_path / "c.csv"
    csv_path.write_text(HEADER + "".join(",".join(map(str, r)) + "\n" for r in rows))
    with pytest.raises(ValidationError, match="is more than 10,000 bytes"):
        read_candles_file(csv_path, max_bytes=10_000)
    from cryptotrading.market.candles import to_candles

    parquet = tmp_path / "c.parquet"
    pq.write_table(to_candles(rows).to_arrow(), parquet, compression="zstd")
    with pytest.raises(ValidationError, match="decodes to more than"):
        read_candles_file(parquet, max_bytes=parquet.stat().st_size)  # compressed fits
    assert len(read_candles_file(parquet)) == len(rows)


def test_bad_max_import_bytes_setting(settings: Settings, binance_dir: Path) -> None:
    path = binance_dir / "ETH_USDT-1h.json"
    for value in ("0", "-1", "lots"):
        result = cli(
            settings,
            "market",
            "import",
            str(path),
            "-s",
            "ETH/USDT",
            "-t",
            "1h",
            CRYPTOTRADING_MAX_IMPORT_BYTES=value,
        )
        assert_refused(result, "invalid setting max_import_bytes", exit_code=2)


# ------------------------------------------------------------ property tests

FRAME = parse_timeframe("1h")
EDGE_INTS = [
    0,
    1,
    -1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    10**400,
    -(10**400),
    END_TIMESTAMP,
    END_TIMESTAMP - 3_600_000,
    1609459200000,
    10**11,
    10**11 - 1,
]
EDGE_FLOATS = [
    0.0,
    -0.0,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    math.inf,
    -math.inf,
    math.nan,
    1e300,
    9e18,
    2.0**63,
    9.223372036854776e18,
    1e11,
    0.5,
    1e-300,
]
numbers = st.one_of(
    st.sampled_from(EDGE_INTS), st.sampled_from(EDGE_FLOATS), st.integers(), st.floats()
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=7), st.dictionaries(st.text(max_size=10), inner, max_size=7)
    ),
    max_leaves=40,
)
candle_rows = st.lists(st.lists(numbers, min_size=6, max_size=6), max_size=8)
trade_rows = st.lists(
    st.one_of(
        st.lists(numbers, min_size=3, max_size=3),
        st.lists(st.one_of(numbers, st.text(max_size=4)), min_size=7, max_size=7),
        st.fixed_dictionaries({"timestamp": numbers, "price": numbers, "amount": numbers}),
    ),
    max_size=8,
)
PROPERTY = hypothesis_settings(
    max_examples=int(os.environ.get("CRYPTOTRADING_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MAGIC = [
    b"",
    b"\x1f\x8b",
    b"\x1f\x8b\x08\x00",
    b"PAR1",
    b"ARROW1",
    b"FEA1",
    b"[",
    b"{",
    b"\xef\xbb\xbf",
]


def _read_all(path: Path, fmt: str | None) -> None:
    """Read *path* as candles and as trades, validating what was read: data or a
    CryptotradingError, never another exception; what passes is in the calendar."""
    for read in (_candles, _trades):
        try:
            ts = read(path, fmt)
        except CryptotradingError as exc:
            assert exc.message and exc.hint
        else:
            assert ((ts >= 0) & (ts < END_TIMESTAMP)).all()


def _candles(path: Path, fmt: str | None) -> Any:
    candles = read_candles_file(path, fmt, max_bytes=1 << 20)
    validate_candles(candles, FRAME)
    return candles.timestamp


def _trades(path: Path, fmt: str | None) -> Any:
    trades = read_trades_file(path, fmt, max_bytes=1 << 20)
    validate_candles(trades_to_candles(trades, FRAME), FRAME)
    return trades.timestamp if len(trades) else np.empty(0, np.int64)


@PROPERTY
@given(
    magic=st.sampled_from(MAGIC),
    body=st.binary(max_size=600),
    fmt=st.sampled_from([None, *FORMATS]),
)
def test_any_bytes_read_or_validation_error(
    tmp_path: Path, magic: bytes, body: bytes, fmt: str | None
) -> None:
    path = tmp_path / "any.bin"
    path.write_bytes(magic + body)
    _read_all(path, fmt)


def _dump(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@PROPERTY
@given(
    document=st.one_of(
        json_values, candle_rows, trade_rows, st.fixed_dictionaries({"data": candle_rows})
    ),
    compressed=st.booleans(),
)
def test_any_json_read_or_validation_error(tmp_path: Path, document: Any, compressed: bool) -> None:
    path = tmp_path / "any.json"
    path.write_bytes(_gzip(_dump(document)) if compressed else _dump(document))
    _read_all(path, None)


column_names = st.sampled_from(
    [
        "timestamp",
        "date",
        "datetime",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "price",
        "amount",
        "qty",
        "Close",
        " open ",
        "x",
        "",
    ]
)
arrow_columns = st.one_of(
    st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=5).map(
        lambda v: pa.array(v, pa.int64())
    ),
    st.lists(st.one_of(st.none(), st.floats()), max_size=5).map(
        lambda v: pa.array(v, pa.float64())
    ),
    st.lists(st.one_of(st.none(), st.text(max_size=6)), max_size=5).map(pa.array),
    st.lists(st.one_of(st.none(), st.booleans()), max_size=5).map(pa.array),
    st.lists(st.integers(-(2**62), 2**62), max_size=5).map(
        lambda v: pa.array(v, pa.timestamp("ms"))
    ),
    st.lists(st.lists(st.floats(), max_size=2), max_size=5).map(pa.array),
)


@PROPERTY
@given(
    columns=st.lists(st.tuples(column_names, arrow_columns), max_size=8),
    fmt=st.sampled_from(["parquet", "feather"]),
)
def test_any_arrow_table_read_or_validation_error(
    tmp_path: Path, columns: list[tuple[str, Any]], fmt: str
) -> None:
    rows = min((len(array) for _, array in columns), default=0)
    table = pa.table(
        [array.slice(0, rows) for _, array in columns], names=[name for name, _ in columns]
    )
    path = tmp_path / f"any.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        feather.write_feather(table, path)
    _read_all(path, None)


def _cell(value: Any) -> str:
    return str(value).replace(",", ";").replace("\n", " ").replace("\r", " ")


csv_headers = st.one_of(
    st.just(HEADER.strip().split(",")),
    st.just(["timestamp", "price", "amount"]),
    st.just(["date", "open", "high", "low", "close", "volume"]),
    st.lists(
        st.sampled_from(
            [
                "timestamp",
                "date",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "price",
                "amount",
                "",
                "x",
                "Close ",
            ]
        ),
        max_size=8,
    ),
    st.none(),  # headerless
)
csv_cells = st.one_of(
    numbers,
    st.text(max_size=8),
    st.sampled_from(["", "nan", "inf", "2021-01-01", "1e400", "0x10", "1_000"]),
)


@PROPERTY
@given(header=csv_headers, rows=st.lists(st.lists(csv_cells, min_size=0, max_size=8), max_size=6))
def test_any_csv_read_or_validation_error(
    tmp_path: Path, header: list[str] | None, rows: list[list[Any]]
) -> None:
    lines = ([",".join(header)] if header is not None else []) + [
        ",".join(_cell(value) for value in row) for row in rows
    ]
    path = tmp_path / "any.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    _read_all(path, None)
    _read_all(path, "csv")


@PROPERTY
@given(name=st.text(max_size=40))
def test_names_accepted_only_when_printable(name: str) -> None:
    for symbol, exchange in ((name, ""), ("BTC/USDT", name)):
        try:
            check_names(symbol, exchange)
        except ValidationError as exc:
            assert exc.hint
        else:
            assert name == name.strip() and name.isprintable() and len(name) <= 32
            assert name or exchange == name  # an empty exchange is allowed, a symbol not


def test_readers_refuse_large_numbers_without_overflow(tmp_path: Path) -> None:
    """Deterministic edges the properties may not draw every run."""
    for ts in (2**63, -(2**63) - 1, 10**400, 1e300, -1e300):
        path = tmp_path / "edge.json"
        path.write_bytes(_dump([[ts, 1, 2, 0.5, 1, 1]]))
        with pytest.raises(ValidationError):
            _candles(path, None)
        path.write_bytes(_dump([[ts, 1.5, 2]]))
        with pytest.raises(ValidationError):
            _trades(path, None)
