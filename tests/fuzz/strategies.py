"""Hostile values for the fuzz suite: text with any Unicode, numbers at the edges of
float64 and int64, times at the edges of the calendar, JSON, CSV text and raw bytes."""

from __future__ import annotations

import gzip
import json
import math
from typing import Any

from hypothesis import strategies as st

# ------------------------------------------------------------------------- text

#: Text that breaks naive code: controls, NUL, newlines, RTL and zero-width marks,
#: lone surrogates of the range the OS gives for undecodable argv bytes
#: (surrogateescape), quotes, SQL and shell metacharacters, very long values.
SPECIAL_TEXT = [
    "",
    " ",
    "\x00",
    "BTC/USDT\x00",
    "BTC/USDT\n",
    "\nBTC/USDT",
    "\r\n",
    "\t",
    "\x1b[31mred\x1b[0m",
    "\u202eTDSU/CTB",  # right-to-left override
    "\u200b",  # zero-width space
    "\ufeffBOM",
    "\udcff\udc80",  # lone surrogates (undecodable argv bytes)
    "BTC/\udcffUSDT",
    "'; DROP TABLE users; --",
    '"quoted"',
    "%s%s%n",
    "{0}{1}",
    "$(rm -rf /)",
    "../../etc/passwd",
    "NULL",
    "None",
    "nan",
    "-",
    "--json",
    "BTC/USDT" * 2000,
    "x" * 100_000,
    "\U0001d539\U0001d54b\u2102/\U0001d54c\U0001d54a\U0001d53b\U0001d54b",  # double-struck
    "比特币/泰达币",
    "١٢٣",
]

_any_char = st.characters(codec=None, exclude_categories=())
_surrogate_escape = st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)

#: Any text: generated Unicode (including controls and surrogates) or a special value.
any_text: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    st.text(_any_char, max_size=40),
    st.text(st.one_of(_any_char, _surrogate_escape), min_size=1, max_size=12),
    st.text(st.characters(codec="ascii"), max_size=20),
)

#: Text that could pass as a ccxt symbol, or a hostile variant of one.
symbols: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(["BTC/USDT", "ETH/BTC", "btc/usdt", "BTC-PERP", "BTC/USDT:USDT"]),
    st.builds(lambda a, b: f"{a}/{b}", any_text, any_text),
    any_text,
)

# ---------------------------------------------------------------------- numbers

INT64_MAX = 2**63 - 1

#: Numbers as the command line spells them, at the edges of float64 and int64.
SPECIAL_NUMBERS = [
    "0",
    "-0",
    "-0.0",
    "1",
    "-1",
    "0.5",
    "1e-9",
    "inf",
    "-inf",
    "Infinity",
    "nan",
    "NaN",
    "-nan",
    "sNaN",
    "1e308",
    "-1e308",
    "1.7976931348623157e308",
    "1e309",
    "5e-324",
    "1e-400",
    "1E+999999999",
    str(INT64_MAX),
    str(INT64_MAX + 1),
    str(-INT64_MAX - 1),
    str(-INT64_MAX - 2),
    str(2**64),
    "9" * 400,
    "-" + "9" * 400,
    "0." + "0" * 400 + "1",
    "1" + "0" * 30 + ".5",
    "0x10",
    "1_000",
    " 1 ",
    "1e",
    "١٢٣",  # Arabic-Indic digits
    "\uff11\uff12\uff13",  # full-width digits
    "",
]

numbers: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(SPECIAL_NUMBERS),
    st.floats().map(repr),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    any_text,
)

#: Integer option values (typer parses them; the edges must not overflow a column).
integers: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(["0", "-1", "1", str(INT64_MAX), str(INT64_MAX + 1), str(-INT64_MAX - 2)]),
    st.sampled_from([str(2**64), "9" * 400, "1e3", "nan", ""]),
    st.integers(min_value=-(2**65), max_value=2**65).map(str),
)

#: float64 values (JSON and file cells).
floats64: st.SearchStrategy[float] = st.one_of(
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 1e308, -1e308, 5e-324]),
    st.floats(),
)

# ------------------------------------------------------------------------ times

#: Times at the edges of the calendar, as ISO text or epoch numbers.
SPECIAL_TIMES = [
    "0001-01-01",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59.999999",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59+14:00",
    "10000-01-01",
    "-0001-01-01",
    "1969-12-31T23:59:59Z",
    "1970-01-01",
    "1970-01-01T00:00:00Z",
    "2038-01-19T03:14:08Z",
    "2100-01-01",
    "2262-04-11T23:47:16.854775807",
    "1677-09-21T00:12:43",
    "2021-02-29",
    "2021-13-01",
    "2021-01-01T24:00:00",
    "2021-01-01T12:00:00+25:00",
    "2021-01-01 12:00",
    "20210101T120000",
    "0",
    "-1",
    "1e300",
    "9e18",
    str(2**63),
    str(-(2**63)),
    "1609459200000",
    "now",
    "",
]

times: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(SPECIAL_TIMES),
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.integers(min_value=-(2**64), max_value=2**64).map(str),
    any_text,
)

# ------------------------------------------------------------------------- JSON

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -(10**400)]),
    floats64,
    any_text,
)

#: Any JSON-like value (non-finite floats included: Python's json writes them).
json_values: st.SearchStrategy[Any] = st.recursive(
    _json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(any_text, children, max_size=5),
    ),
    max_leaves=20,
)


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value)
    except (ValueError, UnicodeEncodeError):
        return "null"


#: Text of a JSON document, almost JSON, or deeply nested.
json_text: st.SearchStrategy[str] = st.one_of(
    json_values.map(_dumps),
    st.dictionaries(any_text, json_values, max_size=5).map(_dumps),
    st.sampled_from(
        [
            "{",
            "[]",
            "{}",
            '{"a": 1, "a": 2}',
            "[" * 100_000 + "]" * 100_000,
            '{"a":' * 5_000 + "1" + "}" * 5_000,
            "1" * 5000,
            "NaN",
            '{"x": Infinity}',
            '{"x": -Infinity, "y": NaN}',
            '{"x": ' + "9" * 5000 + "}",
            '{"x": 1e400}',
            '{"\\u0000": "\\u0000"}',
            '{"x": "\\ud800"}',
            "\ufeff{}",
            "null",
        ]
    ),
    any_text,
)

# -------------------------------------------------------------------- CSV, bytes

_CSV_HEADERS = [
    "timestamp",
    "date",
    "time",
    "datetime",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "price",
    "amount",
    "side",
    "id",
    "fng_value",
    "fng_classification",
]


def _csv(header: list[str], rows: list[list[str]], newline: str) -> str:
    lines = [",".join(header), *(",".join(row) for row in rows)]
    return newline.join(lines) + newline


_cell = st.one_of(
    numbers,
    times,
    st.sampled_from(["", '"', '""', '"a,b"', "1,2", "\x00", "\r"]),
    floats64.map(repr),
)

#: CSV text: a header drawn from known and hostile names, rows of hostile cells.
csv_text: st.SearchStrategy[str] = st.builds(
    _csv,
    st.lists(st.one_of(st.sampled_from(_CSV_HEADERS), any_text), min_size=0, max_size=8),
    st.lists(st.lists(_cell, min_size=0, max_size=8), max_size=8),
    st.sampled_from(["\n", "\r\n", "\r"]),
)


def _candle_row(ts: Any, values: list[Any]) -> list[Any]:
    return [ts, *values]


#: ccxt OHLCV rows with hostile timestamps and values (shape mostly right).
ohlcv_rows: st.SearchStrategy[list[Any]] = st.lists(
    st.builds(
        _candle_row,
        st.one_of(
            st.integers(min_value=-(2**64), max_value=2**64),
            st.sampled_from([1609459200000, 0, -1, 10**400, 1e300, 9e18, math.nan]),
            floats64,
        ),
        st.lists(st.one_of(floats64, st.integers(), st.sampled_from([10**400])), max_size=7),
    ),
    max_size=6,
)

#: A ccxt trades list: dicts with hostile values, or any JSON.
trades_json: st.SearchStrategy[Any] = st.one_of(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "timestamp": st.one_of(st.integers(), floats64, st.sampled_from([10**400])),
                "price": st.one_of(floats64, st.integers(), any_text),
                "amount": st.one_of(floats64, st.integers(), any_text),
                "side": st.one_of(st.sampled_from(["buy", "sell"]), any_text),
                "id": any_text,
                "symbol": any_text,
            },
        ),
        max_size=6,
    ),
    st.lists(st.lists(st.one_of(st.integers(), floats64, any_text), max_size=7), max_size=6),
    json_values,
)


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


#: File bytes: text in odd encodings, gzip (whole, truncated, corrupt) and noise.
def file_bytes(text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    encoded = text.map(encode)
    return st.one_of(
        encoded,
        text.map(lambda t: t.encode("utf-16", "surrogatepass")),
        encoded.map(lambda b: b"\xef\xbb\xbf" + b),
        encoded.map(gzip_bytes),
        encoded.map(lambda b: gzip_bytes(b)[: max(1, len(gzip_bytes(b)) // 2)]),
        encoded.map(lambda b: gzip_bytes(b)[:10] + b"\x00" * 8 + gzip_bytes(b)[18:]),
        st.binary(max_size=512),
        st.sampled_from([b"", b"\x00" * 64, b"PAR1", b"PAR1\x00\x00PAR1", b"ARROW1\x00\x00"]),
    )


#: File names (suffix picks the reader when no format is forced).
suffixes = st.sampled_from([".csv", ".json", ".json.gz", ".gz", ".parquet", ".feather", "", ".txt"])


# ------------------------------------------------------------------ whole commands


def variants(
    valid: dict[str, str | None], hostile: dict[str, st.SearchStrategy[str | None]]
) -> st.SearchStrategy[dict[str, str | None]]:
    """The *valid* option values of a command with up to three of them replaced by
    hostile ones (``None``: the option left out), so every example reaches deep into
    the command and the input checks are hit one at a time as well as together."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, str | None]:
        names = sorted(hostile)
        chosen = draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
        values = dict(valid)
        for name in chosen:
            values[name] = draw(hostile[name])
        return values

    return build()


def maybe(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    """*strategy*, or ``None`` (the option left out)."""
    return st.one_of(st.none(), strategy)


# ------------------------------------------------------- almost valid market files

_START_MS = 1_609_459_200_000  # 2021-01-01T00:00:00Z
_HOUR_MS = 3_600_000

#: A value for one cell of an otherwise valid file.
cell_values: st.SearchStrategy[Any] = st.one_of(
    floats64,
    st.sampled_from([10**400, 2**63, -(2**63) - 1, 2**64, 1e300, 9e18, -1, 0, True, None]),
    st.sampled_from([-62_135_596_800_000, 253_402_300_800_000, 4_102_444_800_000]),
    any_text,
)


def _candle_file(rows: int, row: int, column: int, value: Any, as_csv: bool) -> str:
    data: list[list[Any]] = [
        [_START_MS + i * _HOUR_MS, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 10.0]
        for i in range(rows)
    ]
    data[row % rows][column] = value
    if as_csv:
        lines = ["timestamp,open,high,low,close,volume"]
        lines += [",".join(str(cell) for cell in line) for line in data]
        return "\n".join(lines) + "\n"
    return _dumps(data)


#: A valid hourly OHLCV file (ccxt JSON or CSV) with one cell replaced.
almost_valid_candles: st.SearchStrategy[str] = st.builds(
    _candle_file,
    st.integers(1, 6),
    st.integers(0, 5),
    st.integers(0, 5),
    cell_values,
    st.booleans(),
)


def _trade_file(rows: int, row: int, field: str, value: Any) -> str:
    data: list[dict[str, Any]] = [
        {
            "timestamp": _START_MS + i * 1_000,
            "price": 100.0 + i,
            "amount": 0.5,
            "side": "buy",
            "id": str(i),
        }
        for i in range(rows)
    ]
    data[row % rows][field] = value
    return _dumps(data)


#: A valid ccxt trades JSON file with one field replaced.
almost_valid_trades: st.SearchStrategy[str] = st.builds(
    _trade_file,
    st.integers(1, 6),
    st.integers(0, 5),
    st.sampled_from(["timestamp", "price", "amount", "side", "id"]),
    cell_values,
)
