"""Writes batches of candles into a store until killed (a concurrent writer for tests).

Usage: python writer.py URL BATCH [SYMBOL]. Each batch of BATCH rows is one
transaction; batch k holds candles k*BATCH .. k*BATCH+BATCH-1. Prints "ready" after
the first commit.
"""

from __future__ import annotations

import sys

from cryptotrading.db.engine import create_store_engine
from tests.ops.helpers import insert_candles


def main() -> None:
    url, batch = sys.argv[1], int(sys.argv[2])
    symbol = sys.argv[3] if len(sys.argv) > 3 else "WRITER/USDT"
    engine = create_store_engine(url, synchronous="NORMAL")
    number = 0
    while True:
        insert_candles(engine, number * batch, batch, symbol)
        number += 1
        if number == 1:
            print("ready", flush=True)


if __name__ == "__main__":
    main()
