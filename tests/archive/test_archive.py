"""Archiving old candles into Parquet: nothing lost, nothing duplicated, even when the
archiver dies between writing the archive and deleting the hot rows."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import Engine, text

from cryptotrading.errors import StoreError, ValidationError
from cryptotrading.market import archive
from cryptotrading.market.archive import (
    archive_time_series,
    parse_age,
    read_archive,
    verify_archive,
)
from cryptotrading.models import TimeSeries
from cryptotrading.stores import Stores

PAIRS = ("BTC_USDT", "ETH_USDT", "LTC_USDT")
ROWS_PER_PAIR = 2000  # 2020-12-01 .. 2021-02-22: three months
NOW = datetime(2021, 3, 1, tzinfo=UTC)  # with 30 days: everything before 2021-01-30


def _candles(market_data_dir: Path) -> list[dict[str, object]]:
    rows = []
    for pair in PAIRS:
        raw = json.loads(
            (market_data_dir / "binance_nfi_2020-12_2021-07" / f"{pair}-1h.json").read_text()
        )
        for ts, o, h, low, c, v in raw[:ROWS_PER_PAIR]:
            rows.append(
                {
                    "symbol": pair.replace("_", "/"),
                    "frequency": "1h",
                    "timestamp": ts,
                    "exchange": "binance",
                    "open": o,
                    "high": h,
                    "low": low,
                    "close": c,
                    "volume": v,
                    "ingested_at": 1,
                }
            )
    return rows


def _load(engine: Engine, rows: list[dict[str, object]]) -> None:
    with engine.begin() as connection:
        connection.execute(TimeSeries.__table__.delete())
        connection.execute(TimeSeries.__table__.insert(), rows)


def _hot(engine: Engine) -> set[tuple[object, ...]]:
    with engine.connect() as connection:
        return set(
            connection.execute(
                text(
                    "SELECT symbol, timestamp, exchange, open, high, low, close, volume "
                    "FROM time_series"
                )
            ).all()
        )


def _archived(archive_dir: Path) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for pair in PAIRS:
        symbol = pair.replace("_", "/")
        table = read_archive(archive_dir, symbol, "1h")
        for record in table.to_pylist():
            rows.append(
                (
                    symbol,
                    record["timestamp"],
                    record["exchange"],
                    record["open"],
                    record["high"],
                    record["low"],
                    record["close"],
                    record["volume"],
                )
            )
    return rows


def _expected(rows: list[dict[str, object]]) -> set[tuple[object, ...]]:
    keys = ("symbol", "timestamp", "exchange", "open", "high", "low", "close", "volume")
    return {tuple(row[k] for k in keys) for row in rows}


@pytest.fixture
def loaded(
    stores: Stores, market_data_dir: Path
) -> Iterator[tuple[Engine, list[dict[str, object]]]]:
    engine = stores.engine(stores.market)
    rows = _candles(market_data_dir)
    _load(engine, rows)
    yield engine, rows


def test_archive_moves_old_rows_and_reads_back(
    loaded: tuple[Engine, list[dict[str, object]]], tmp_path: Path
) -> None:
    engine, rows = loaded
    report = archive_time_series(engine, tmp_path / "archive", timedelta(days=30), now=NOW)
    cutoff = report.cutoff_ms
    hot, archived = _hot(engine), _archived(tmp_path / "archive")
    assert report.rows == len(archived) > 0
    assert all(r[1] >= cutoff for r in hot) and all(r[1] < cutoff for r in archived)
    assert len(archived) == len(set(archived))
    assert hot | set(archived) == _expected(rows) and not hot & set(archived)
    months = {p["month"] for p in report.partitions}
    assert months == {"2020-12", "2021-01"}
    assert all(r["ok"] for r in verify_archive(tmp_path / "archive"))
    assert (
        tmp_path
        / "archive"
        / "exchange=binance"
        / "symbol=BTC%2FUSDT"
        / "timeframe=1h"
        / "month=2020-12"
        / "candles.parquet"
    ).exists()

    again = archive_time_series(engine, tmp_path / "archive", timedelta(days=30), now=NOW)
    assert again.rows == 0

    window = read_archive(
        tmp_path / "archive",
        "BTC/USDT",
        "1h",
        exchange="binance",
        start=1606780800000,
        end=1606780800000 + 3 * 3600_000,
    )
    assert window.column("timestamp").to_pylist() == [
        1606780800000 + i * 3600_000 for i in range(3)
    ]
    assert window.column("open").to_pylist()[0] == 19695.87


def test_failure_between_archive_write_and_delete_loses_and_duplicates_nothing(
    loaded: tuple[Engine, list[dict[str, object]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, rows = loaded
    archive_dir = tmp_path / "archive"

    def crash(path: Path, moved: pa.Table) -> None:
        raise StoreError("simulated crash after the archive file was written")

    monkeypatch.setattr(archive, "_verify", crash)
    with pytest.raises(StoreError, match="simulated crash"):
        archive_time_series(engine, archive_dir, timedelta(days=30), now=NOW)
    assert _hot(engine) == _expected(rows)  # the delete was rolled back: nothing lost
    written = _archived(archive_dir)
    assert written and set(written) <= _expected(rows)  # the file exists, same values

    monkeypatch.undo()
    archive_time_series(engine, archive_dir, timedelta(days=30), now=NOW)
    hot, archived = _hot(engine), _archived(archive_dir)
    assert len(archived) == len(set(archived))  # merged, not appended twice
    assert hot | set(archived) == _expected(rows) and not hot & set(archived)


@pytest.mark.slow
def test_kill_9_archiver_at_random_points(
    loaded: tuple[Engine, list[dict[str, object]]], stores: Stores, tmp_path: Path
) -> None:
    engine, rows = loaded
    url = stores.market.url
    script = Path(__file__).with_name("run_archiver.py")
    now_ms = str(int(NOW.timestamp() * 1000))
    rng = random.Random(20211231)

    def start(archive_dir: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(script), url, str(archive_dir), now_ms],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    began = time.perf_counter()  # calibrate: how long one full run takes here
    assert start(tmp_path / "calibration").wait(timeout=120) == 0
    duration = time.perf_counter() - began
    engine.dispose()
    killed = 0
    for trial in range(20):
        _load(engine, rows)
        archive_dir = tmp_path / f"trial-{trial}"
        process = start(archive_dir)
        time.sleep(rng.uniform(0.2, 1.0) * duration)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait(timeout=60)
        engine.dispose()
        hot, archived = _hot(engine), _archived(archive_dir)
        assert hot | set(archived) == _expected(rows), f"trial {trial}: rows lost"
        for row in hot & set(archived):  # only the crash window: identical copies
            assert row in _expected(rows)
        archive_time_series(engine, archive_dir, timedelta(days=30), now=NOW)  # recovery run
        hot, archived = _hot(engine), _archived(archive_dir)
        assert len(archived) == len(set(archived)), f"trial {trial}: duplicates"
        assert hot | set(archived) == _expected(rows) and not hot & set(archived)
        assert all(r["ok"] for r in verify_archive(archive_dir))
    assert killed >= 5, "the kills should land while the archiver runs"


@pytest.mark.parametrize("value", ["90", "0d", "-5d", "3y", "d"])
def test_bad_ages_are_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="invalid age"):
        parse_age(value)


def test_ages() -> None:
    assert parse_age("90d") == timedelta(days=90)
    assert parse_age("12h") == timedelta(hours=12)
    assert parse_age("2w") == timedelta(weeks=2)


def test_a_partition_whose_first_write_never_completed_is_skipped(tmp_path: Path) -> None:
    """An archiver killed between creating a month directory and renaming its file
    into place leaves an empty directory (and maybe a temporary file) behind."""
    month = tmp_path / "exchange=binance" / "symbol=BTC%2FUSDT" / "timeframe=1h" / "month=2021-01"
    month.mkdir(parents=True)
    (month / ".candles.parquet.12345.tmp").write_bytes(b"PAR1 partial")
    assert read_archive(tmp_path, "BTC/USDT", "1h").num_rows == 0
    assert verify_archive(tmp_path) == []
