"""Races between writers: concurrent promotions leave one production version,
concurrent submits with one client order id create one order (both backends)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine, func, select

from cryptotrading.db import unit_of_work
from cryptotrading.intelligence import list_models, promote, register_model
from cryptotrading.models.trading import TradingOrder
from cryptotrading.trading import submit_order


def _together(count: int, task: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(count)

    def run(index: int) -> Any:
        barrier.wait()
        return task(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_promotions_leave_one_production_version(app_engine: Engine) -> None:
    versions = [f"1.{minor}.0" for minor in range(6)]
    for version in versions:
        register_model(app_engine, name="race", version=version)
    for _round in range(3):
        _together(len(versions), lambda i: promote(app_engine, "race", versions[i]))
        stages = [m.stage for m in list_models(app_engine, "race")]
        assert stages.count("production") == 1
        assert stages.count("archived") == len(versions) - 1


def test_concurrent_submits_with_one_client_id_create_one_order(
    app_engine: Engine, user_id: int
) -> None:
    def submit(_index: int) -> tuple[str, bool]:
        result = submit_order(
            app_engine,
            user_id=user_id,
            symbol="SOL/USDT",
            side="buy",
            order_type="limit",
            amount="10",
            price="1.5",
            client_order_id="retry-storm",
        )
        return result.order.order_id, result.created

    results = _together(6, submit)
    assert len({order_id for order_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    with unit_of_work(app_engine) as session:
        assert session.scalar(select(func.count()).select_from(TradingOrder)) == 1
