"""Reclaim: after archiving real candles the market store gives its space back, and
``health`` shows what a reclaim would give back before it runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, text

from cryptotrading.market.store import MarketStore
from cryptotrading.models import SystemMetric
from cryptotrading.ops import maintenance, reclaim, scheduler
from cryptotrading.ops.health_readings import store_health
from cryptotrading.ops.lifecycle import initialize
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import BINANCE_DIR, count_rows, load_candles, load_rows


def _import_all(stores: Stores, market_data_dir: Path) -> int:
    """Every Binance 1h file, through the library's batch writer (``market import``)."""
    market = MarketStore(stores)
    written = 0
    for path in sorted((market_data_dir / BINANCE_DIR).glob("*-1h.json")):
        symbol = path.name.removesuffix("-1h.json").replace("_", "/")
        written += market.write_ohlcv(
            load_rows(path), symbol=symbol, timeframe="1h", exchange="binance"
        ).changed
    return written


def _time_series_bytes(engine: Engine) -> int:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            return int(connection.exec_driver_sql("PRAGMA page_count").scalar() or 0) * int(
                connection.exec_driver_sql("PRAGMA page_size").scalar() or 0
            )
        return int(
            connection.exec_driver_sql(
                "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) "
                "FROM pg_partition_tree('time_series')"
            ).scalar()
            or 0
        )


def _delete(engine: Engine, where: str) -> None:
    with engine.begin() as connection:
        connection.execute(text(f"DELETE FROM system_metrics WHERE {where}"))
        if engine.dialect.name == "postgresql":  # publish the dead rows at commit
            connection.exec_driver_sql("SELECT pg_stat_force_next_flush()")


def _until(predicate: object, seconds: float = 15.0) -> None:
    """Wait for PostgreSQL's statistics (flushed by each backend about once a second)."""
    assert callable(predicate)
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"statistics never caught up: {_reading()}"
        time.sleep(0.2)


@pytest.mark.slow
def test_archive_job_gives_the_market_store_space_back(
    stores: Stores, market_data_dir: Path
) -> None:
    engine = stores.engine(stores.market)
    loaded = _import_all(stores, market_data_dir)
    assert loaded > 40_000
    size_before = _time_series_bytes(engine)
    [result] = scheduler.run_due(stores, only=["archive"])
    assert result.status == "ok", result
    assert result.detail["rows"] == loaded and count_rows(engine, "time_series") == 0
    done = result.detail["reclaim"]
    size_after = _time_series_bytes(engine)
    if engine.dialect.name == "sqlite":
        assert done["action"] == "vacuum"
        assert done["reclaimable_before"] > 0.9 * size_before
        assert done["reclaimable_after"] == 0
        assert done["size_after"] < size_before / 20  # 2,7 MB of pages -> a few pages
        assert done["auto_vacuum"] == "incremental"  # the rebuild switched the mode
        assert done["bytes_reclaimed"] == done["size_before"] - done["size_after"]
    else:
        assert done["action"] == "vacuum_analyze" and done["tables"] == ["time_series"]
        # the emptied tables are truncated; b-tree indexes keep their (reusable) pages
        assert size_after < size_before * 0.6
    assert size_after < size_before


def test_incremental_file_reclaims_without_a_rebuild(tmp_path: Path, market_data_dir: Path) -> None:
    """SQLite only: ``auto_vacuum`` is a setting of the file (PostgreSQL: see above)."""
    stores = Stores(Settings(data_dir=tmp_path / "data", reclaim_min_bytes=0))
    initialize(stores)
    engine = stores.engine(stores.market)
    maintenance.vacuum(stores)  # `db vacuum` switches every file to incremental
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA auto_vacuum").scalar() == 2
    load_candles(engine, market_data_dir, "BTC/USDT", "1h", "binance")
    load_candles(engine, market_data_dir, "ETH/USDT", "1h", "binance")
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM time_series WHERE symbol = 'ETH/USDT'"))
    free = reclaim.space(stores, stores.market)
    assert free.auto_vacuum == "incremental" and free.free_pages
    assert free.reclaimable_bytes == free.free_pages * (free.page_size or 0)
    done = reclaim.reclaim_store(stores, stores.market)
    assert done.action == "incremental_vacuum"
    assert done.reclaimable_after == 0
    assert done.bytes_reclaimed >= free.reclaimable_bytes
    assert count_rows(engine, "time_series") > 4_000  # BTC/USDT untouched
    stores.close()


@pytest.fixture
def quiet(stores: Stores) -> Iterator[Stores]:
    """:func:`stores`; on PostgreSQL without autovacuum on ``system_metrics`` while
    the test counts its dead rows."""
    engine = stores.engine(stores.app)
    if engine.dialect.name == "postgresql":
        _autovacuum(engine, "SET (autovacuum_enabled = false)")
    try:
        yield stores
    finally:
        if engine.dialect.name == "postgresql":
            _autovacuum(engine, "RESET (autovacuum_enabled)")


def _autovacuum(engine: Engine, change: str) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(f"ALTER TABLE system_metrics {change}")


def _metrics(engine: Engine, count: int) -> None:
    rows = [{"metric_name": "m", "value": 1.0, "component": "x" * 100} for _ in range(count)]
    with engine.begin() as connection:
        connection.execute(insert(SystemMetric), rows)
        if engine.dialect.name == "postgresql":  # publish the live rows at commit
            connection.exec_driver_sql("SELECT pg_stat_force_next_flush()")


_last: list[dict[str, int]] = [{}]


def _reading() -> dict[str, int]:
    return _last[0]


def _dead_share(stores: Stores) -> float:
    """Dead rows / rows of ``system_metrics`` once the statistics show the deletes (a
    pooled test database may add dead rows of the test before it); 0 until then."""
    reading = reclaim.space(stores, stores.app).tables.get("system_metrics") or {}
    _last[0] = reading
    dead, live = reading.get("dead_rows", 0), reading.get("live_rows", 0)
    # (estimates: an ANALYZE by an earlier test of a pooled database leaves them a
    # few rows off)
    return dead / (dead + live) if dead >= 18_000 and 2_000 <= live < 2_100 else 0.0


def _with(stores: Stores, **changes: object) -> Stores:
    """The same databases under other settings."""
    return Stores(stores.settings.model_copy(update=changes))


def test_thresholds_decide_and_health_reports_the_free_space(quiet: Stores) -> None:
    stores, app = quiet, quiet.app
    engine = stores.engine(app)
    _metrics(engine, 20_000)
    with engine.connect() as connection:
        first = int(connection.exec_driver_sql("SELECT min(id) FROM system_metrics").scalar() or 0)
    _delete(engine, f"id < {first + 18_000}")  # whole pages of rows
    if engine.dialect.name == "sqlite":
        # Every change carries a row image in the change log, in the same file: the
        # pages come free once the log is trimmed past them (as here).
        with engine.begin() as connection:
            connection.exec_driver_sql("DELETE FROM change_log")
        share = reclaim.space(stores, app).free_ratio
    else:
        _until(lambda: _dead_share(stores))
        share = _dead_share(stores)
    free = reclaim.space(stores, app)
    reading = store_health(stores, app)
    assert reading.reclaimable_bytes == free.reclaimable_bytes > 1024**2
    assert reading.free_ratio == free.free_ratio and 0 < free.free_ratio < 1
    if engine.dialect.name == "sqlite":
        assert free.reclaimable_bytes == (free.free_pages or 0) * (free.page_size or 0)

    with _with(stores, reclaim_free_ratio=min(1.0, share + 0.01)) as strict:
        untouched = reclaim.reclaim_store(strict, app)
    assert "system_metrics" not in untouched.tables
    if engine.dialect.name == "sqlite":  # (PostgreSQL: a pooled database may hold
        assert untouched.action == "none"  # dead rows of earlier tests elsewhere)
    with _with(stores, reclaim_min_bytes=free.reclaimable_bytes + 1) as large:
        assert "system_metrics" not in reclaim.reclaim_store(large, app).tables

    with _with(stores, reclaim_free_ratio=share - 0.05) as lenient:
        done = reclaim.reclaim_store(lenient, app)
    if engine.dialect.name == "sqlite":
        assert done.action == "vacuum"
        assert done.bytes_reclaimed >= free.reclaimable_bytes
        assert store_health(stores, app).reclaimable_bytes == 0
    else:
        assert done.action == "vacuum_analyze" and "system_metrics" in done.tables
    assert count_rows(engine, SystemMetric) == 2_000


def test_force_rebuilds_even_below_the_thresholds(stores: Stores) -> None:
    results = {r.store: r for r in reclaim.reclaim(stores, force=True)}
    assert set(results) == {"app", "market", "replica"}
    expected = "vacuum" if stores.app.backend == "sqlite" else "vacuum_analyze"
    assert {r.action for r in results.values()} == {expected}
    plain = {r.store: r.action for r in reclaim.reclaim(stores)}
    assert set(plain.values()) <= {"none", "incremental_vacuum"}


def test_reclaim_and_analyze_jobs(stores: Stores) -> None:
    results = {r.job: r for r in scheduler.run_due(stores, only=["reclaim", "analyze"])}
    assert results["reclaim"].status == "ok", results
    assert set(results["reclaim"].detail["stores"]) == {"app", "market", "replica"}
    assert results["analyze"].status == "ok", results
    assert set(results["analyze"].detail) == {"app", "market", "replica"}
    with stores.engine(stores.market).connect() as connection:
        if stores.market.backend == "sqlite":
            analysed = connection.exec_driver_sql("SELECT count(*) FROM sqlite_stat1").scalar()
            assert analysed is not None and analysed > 0
        else:
            last = connection.exec_driver_sql(
                "SELECT max(last_analyze) FROM pg_stat_user_tables"
            ).scalar()
            assert last is not None
