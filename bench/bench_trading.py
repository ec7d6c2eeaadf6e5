"""Cost of recording a fill (order + position in one transaction), as a ratio against a
bare one-row UPDATE transaction on the same store, measured in the same run.

    .venv/bin/python bench/bench_trading.py [--fills 1000] [--pg-url URL]

Also shows how a fill's cost grows with the fills already on the order (each fill
rewrites the order's ``fills`` JSON).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, text

from cryptotrading import Settings, Stores, initialize, unit_of_work
from cryptotrading.models import User
from cryptotrading.trading.orders import accept_order, fill_order, submit_order


def _user(engine: Engine) -> int:
    with unit_of_work(engine) as session:
        user = User(username="bench", email="bench@example.com", password_hash="x")
        session.add(user)
        session.flush()
        return user.id


def _fills_per_second(engine: Engine, user_id: int, fills: int) -> tuple[float, float, float]:
    order = submit_order(
        engine,
        user_id=user_id,
        symbol="BTC/USDT",
        side="buy",
        order_type="market",
        amount=str(fills),
    ).order.order_id
    accept_order(engine, order)
    timings = []
    for i in range(fills):
        started = time.perf_counter()
        fill_order(engine, order, price=f"{30000 + i % 50}.5", amount="1", fee="0.01")
        timings.append(time.perf_counter() - started)
    tenth = max(1, fills // 10)
    first, last = sum(timings[:tenth]) / tenth, sum(timings[-tenth:]) / tenth
    return fills / sum(timings), first, last


def _updates_per_second(engine: Engine, user_id: int, count: int) -> float:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO portfolio_positions (user_id, symbol, exchange, quantity, "
                "average_entry_price, realized_pnl, unrealized_pnl, fees_paid, version, "
                "created_at, updated_at) VALUES (:u, 'ETH/USDT', '', '0', '0', '0', '0', '0', "
                "1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"u": user_id},
        )
    started = time.perf_counter()
    for _ in range(count):
        with engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE portfolio_positions SET version = version + 1 "
                    "WHERE user_id = :u AND symbol = 'ETH/USDT'"
                ),
                {"u": user_id},
            )
    return count / (time.perf_counter() - started)


def run(label: str, settings: Settings, fills: int) -> None:
    with Stores(settings) as stores:
        initialize(stores)
        engine = stores.engine(stores.app)
        user_id = _user(engine)
        baseline = _updates_per_second(engine, user_id, fills)
        rate, first, last = _fills_per_second(engine, user_id, fills)
    print(f"{label}: {fills} fills on one order")
    print(f"  bare one-row UPDATE transaction   {baseline:10.0f} /s")
    print(f"  fill_order (order + position)     {rate:10.0f} /s   {baseline / rate:5.1f}x the cost")
    print(f"  first tenth {first * 1000:.2f} ms/fill, last tenth {last * 1000:.2f} ms/fill")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fills", type=int, default=1000)
    parser.add_argument("--pg-url", default=None, help="an empty PostgreSQL database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run("SQLite", Settings(data_dir=Path(scratch), layout="single"), args.fills)
    if args.pg_url:
        run("PostgreSQL", Settings(layout="single", app_url=args.pg_url), args.fills)


if __name__ == "__main__":
    main()
