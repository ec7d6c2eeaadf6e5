"""Run by the concurrency tests in a subprocess: fill an order COUNT times.

Usage: python -m tests.trading.fill_worker ORDER_ID COUNT AMOUNT PRICE FEE START_FILE
Settings come from the CRYPTOTRADING_* environment. Touches START_FILE.ready.<pid>
when ready, then waits for START_FILE so both workers start together;
prints ``{"ok": n, "refused": m}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from cryptotrading.errors import ValidationError
from cryptotrading.settings import load_settings
from cryptotrading.stores import Stores
from cryptotrading.trading import fill_order


def main(argv: list[str]) -> None:
    order_id, count, amount, price, fee, start_file = argv
    with Stores(load_settings()) as stores:
        engine = stores.engine(stores.app)
        with engine.connect():  # connected and imported: tell the test we are ready
            pass
        Path(f"{start_file}.ready.{os.getpid()}").touch()
        deadline = time.monotonic() + 60
        while not Path(start_file).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        ok = refused = 0
        for _ in range(int(count)):
            try:
                fill_order(engine, order_id, price=price, amount=amount, fee=fee)
                ok += 1
            except ValidationError:
                refused += 1
    print(json.dumps({"ok": ok, "refused": refused}))


if __name__ == "__main__":
    main(sys.argv[1:])
