"""``market import / export / show / list`` on the real files, both backends."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cryptotrading.market import MarketStore
from cryptotrading.market.formats import detect_format
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import BINANCE_DIR, SettingsFactory, invoke, invoke_json, load_rows


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings("three")


REAL_FILES = [
    (f"{BINANCE_DIR}/BTC_USDT-1h.json", "json", "BTC/USDT", "1h", 5482),
    ("freqtrade_testdata/UNITTEST_BTC-1m.json", "json", "UNITTEST/BTC", "1m", 13681),
    ("freqtrade_testdata/XRP_ETH-1m.feather", "feather", "XRP/ETH", "1m", 2469),
    ("nautilus_testdata/btc-perp-20211231-20220201_1m.csv", "csv", "BTC-PERP", "1m", 45031),
    ("basana_testdata/bitstamp_btcusd_min_2020_01_01.csv", "csv", "BTC/USD", "1m", 1440),
    ("basana_testdata/binance_btcusdt_day_2020.csv", "csv", "BTC/USDT", "1d", 366),
    ("sentiment/CRYPTO_FNG_INDEX.csv", "csv", "FNG", "1d", 2583),
]


@pytest.mark.parametrize(("name", "fmt", "symbol", "timeframe", "rows"), REAL_FILES)
def test_import_real_file(
    settings: Settings,
    market_data_dir: Path,
    name: str,
    fmt: str,
    symbol: str,
    timeframe: str,
    rows: int,
) -> None:
    path = market_data_dir / name
    assert detect_format(path) == fmt
    payload = invoke_json(
        settings, "market", "import", str(path), "-s", symbol, "-t", timeframe, "-e", "x", "--json"
    )
    assert payload["format"] == fmt
    assert (payload["rows"], payload["changed"], payload["unchanged"]) == (rows, rows, 0)
    again = invoke_json(
        settings, "market", "import", str(path), "-s", symbol, "-t", timeframe, "-e", "x", "--json"
    )
    assert (again["changed"], again["unchanged"]) == (0, rows)
    listed = invoke_json(settings, "market", "list", "--json")
    assert [(s["symbol"], s["timeframe"], s["rows"]) for s in listed] == [(symbol, timeframe, rows)]


def test_import_gz_and_parquet_roundtrip(
    settings: Settings, binance_dir: Path, tmp_path: Path
) -> None:
    source = binance_dir / "ETH_USDT-1h.json"
    packed = tmp_path / "ETH_USDT-1h.json.gz"
    with source.open("rb") as raw, gzip.open(packed, "wb") as out:
        shutil.copyfileobj(raw, out)
    renamed = tmp_path / "candles.dat"  # the extension does not matter
    shutil.copy(packed, renamed)
    first = invoke_json(
        settings, "market", "import", str(renamed), "-s", "ETH/USDT", "-t", "1h", "--json"
    )
    assert (first["format"], first["rows"]) == ("json.gz", 5482)
    exported = tmp_path / "eth.parquet"
    out = invoke_json(
        settings, "market", "export", str(exported), "-s", "ETH/USDT", "-t", "4h", "--json"
    )
    assert out["format"] == "parquet" and detect_format(exported) == "parquet"
    csv_out = tmp_path / "eth.csv"
    invoke_json(settings, "market", "export", str(csv_out), "-s", "ETH/USDT", "-t", "1h", "--json")
    back = invoke_json(
        settings, "market", "import", str(exported), "-s", "ETH4H", "-t", "4h", "--json"
    )
    assert back["rows"] == out["rows"] > 1300
    again = invoke_json(
        settings, "market", "import", str(csv_out), "-s", "ETH/USDT", "-t", "1h", "--json"
    )
    assert (again["format"], again["changed"], again["unchanged"]) == ("csv", 0, 5482)
    with Stores(settings) as stores:
        market = MarketStore(stores)
        stored = market.read_ohlcv("ETH4H", "4h", as_="numpy")
        direct = market.read_ohlcv("ETH/USDT", "4h", as_="numpy")
    assert (stored == direct).all()


def test_show_json_shape_and_formats(settings: Settings, binance_dir: Path) -> None:
    path = binance_dir / "BTC_USDT-5m.json"
    invoke_json(
        settings,
        "market",
        "import",
        str(path),
        "-s",
        "BTC/USDT",
        "-t",
        "5m",
        "-e",
        "binance",
        "--json",
    )
    shown = invoke_json(
        settings,
        "market",
        "show",
        "BTC/USDT",
        "-t",
        "1h",
        "-e",
        "binance",
        "--start",
        "2021-01-01",
        "--end",
        "2021-01-01T03:00",
        "--output",
        "json",
    )
    hourly = {row[0]: row for row in load_rows(binance_dir / "BTC_USDT-1h.json")}
    assert isinstance(shown, list) and len(shown) == 3
    for item in shown:
        assert set(item) == {"timestamp", "open", "high", "low", "close", "volume"}
        assert isinstance(item["timestamp"], int)
        assert [item[k] for k in ("open", "high", "low", "close")] == hourly[item["timestamp"]][1:5]
    assert shown[0]["timestamp"] == 1609459200000
    as_csv = invoke(
        settings, "market", "show", "BTC/USDT", "-t", "1d", "-n", "2", "--output", "csv"
    )
    assert as_csv.exit_code == 0, as_csv.output
    lines = as_csv.stdout.strip().splitlines()
    assert lines[0] == "timestamp,open,high,low,close,volume" and len(lines) == 3
    table = invoke(settings, "market", "show", "BTC/USDT", "-t", "5m", "-n", "3")
    assert table.exit_code == 0 and "3 candles" in table.stdout and "2021-07-17" in table.stdout
    # an 80-column terminal shows whole times (not 2021-07-17T2…) and rounded volumes
    narrow = invoke(
        settings, "market", "show", "BTC/USDT", "-t", "1h", "-n", "3", env={"COLUMNS": "80"}
    )
    assert "…" not in narrow.stdout and "2021-07-17 20:00" in narrow.stdout, narrow.stdout
    assert max(map(len, narrow.stdout.splitlines())) <= 80
    daily = invoke(settings, "market", "show", "BTC/USDT", "-t", "1d", "-n", "2")
    assert "│ 2021-07-17 │" in daily.stdout, daily.stdout


def test_cli_bad_input_writes_nothing(
    settings: Settings, market_data_dir: Path, binance_dir: Path, tmp_path: Path
) -> None:
    trades = market_data_dir / "nautilus_testdata" / "btcusdt-trades.parquet"
    result = invoke(settings, "market", "import", str(trades), "-s", "BTC/USDT", "-t", "1m")
    assert result.exit_code == 5
    assert "missing column(s) open, high, low, close, volume" in result.stderr
    assert "hint:" in result.stderr
    rows = load_rows(binance_dir / "BTC_USDT-1h.json")
    rows[4000][3] = -rows[4000][3]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(rows))
    result = invoke(
        settings,
        "market",
        "import",
        str(broken),
        "-s",
        "BTC/USDT",
        "-t",
        "1h",
        "--batch-size",
        "100",
    )
    assert result.exit_code == 5
    assert "row 4000" in result.stderr and "nothing was written" in result.stderr
    result = invoke(
        settings, "market", "import", str(binance_dir / "BTC_USDT-5m.json"), "-s", "B", "-t", "1h"
    )
    assert result.exit_code == 5 and "not on the 1h grid" in result.stderr
    missing = invoke(
        settings, "market", "import", str(tmp_path / "nope.csv"), "-s", "B", "-t", "1h"
    )
    assert missing.exit_code == 6
    shown = invoke(settings, "market", "show", "BTC/USDT", "--output", "xml")
    assert shown.exit_code == 5
    assert invoke_json(settings, "market", "list", "--json") == []


def test_import_records_job(settings: Settings, binance_dir: Path) -> None:
    from cryptotrading.market.jobs import job_status

    path = binance_dir / "SOL_USDT-1h.json"
    payload = invoke_json(
        settings,
        "market",
        "import",
        str(path),
        "-s",
        "SOL/USDT",
        "-t",
        "1h",
        "-e",
        "binance",
        "--batch-size",
        "1000",
        "--json",
    )
    assert payload["batches"] == 6
    with Stores(settings) as stores:
        job = job_status(stores, payload["job_id"])
    assert job["status"] == "completed" and job["progress_percentage"] == 100.0
    assert job["rows_processed"] == 5482 and job["source"] == "binance"
    assert job["params"]["format"] == "json"
    assert np.isclose(job["progress_percentage"], 100.0)


def test_more_bad_files_write_nothing(
    settings: Settings, market_data_dir: Path, binance_dir: Path, tmp_path: Path
) -> None:
    trades = market_data_dir / "freqtrade_testdata" / "XRP_ETH-trades.json.gz"
    result = invoke(settings, "market", "import", str(trades), "-s", "XRP/ETH", "-t", "1m")
    assert result.exit_code == 5 and "cannot read candles" in result.stderr
    rows = load_rows(binance_dir / "DOGE_USDT-1h.json")
    descending = tmp_path / "descending.json"
    descending.write_text(json.dumps(rows[::-1]))
    result = invoke(settings, "market", "import", str(descending), "-s", "DOGE/USDT", "-t", "1h")
    assert result.exit_code == 5 and "row 1 " in result.stderr and "unsorted" in result.stderr
    truncated = tmp_path / "truncated.json"
    truncated.write_text(json.dumps(rows)[:-1000])
    result = invoke(settings, "market", "import", str(truncated), "-s", "DOGE/USDT", "-t", "1h")
    assert result.exit_code == 5 and "cannot read truncated.json as json" in result.stderr
    headerless = tmp_path / "five.csv"
    headerless.write_text("1606780800000,1,2,0.5,1.5\n")
    result = invoke(settings, "market", "import", str(headerless), "-s", "DOGE/USDT", "-t", "1h")
    assert result.exit_code == 5 and "6 columns" in result.stderr
    unknown = invoke(settings, "market", "show", "DOGE/USDT", "-t", "1h")
    assert unknown.exit_code == 6 and "no 1h candles for DOGE/USDT" in unknown.stderr
    assert invoke_json(settings, "market", "list", "--json") == []


def test_json_records_and_epoch_seconds(
    settings: Settings, binance_dir: Path, tmp_path: Path
) -> None:
    rows = load_rows(binance_dir / "DOT_USDT-1h.json")[:240]
    keys = ("timestamp", "open", "high", "low", "close", "volume")
    records = tmp_path / "records.json"
    records.write_text(json.dumps([dict(zip(keys, row, strict=True)) for row in rows]))
    seconds = tmp_path / "seconds.csv"
    seconds.write_text(
        "time,open,high,low,close,volume\n"
        + "".join(
            f"{row[0] // 1000},{row[1]},{row[2]},{row[3]},{row[4]},{row[5]}\n" for row in rows
        )
    )
    first = invoke_json(
        settings, "market", "import", str(records), "-s", "DOT/USDT", "-t", "1h", "--json"
    )
    assert (first["format"], first["changed"]) == ("json", 240)
    second = invoke_json(
        settings, "market", "import", str(seconds), "-s", "DOT/USDT", "-t", "1h", "--json"
    )
    assert (second["format"], second["changed"], second["unchanged"]) == ("csv", 0, 240)
