"""One replication pass on the stores named by CRYPTOTRADING_* (a victim for kill -9).

Usage: python -m tests.ops.replicator BATCH_SIZE. Prints "started" once the imports
are done and the replication begins, "done SECONDS" at the end.
"""

from __future__ import annotations

import sys
import time

from cryptotrading.ops.replication import replicate_once
from cryptotrading.settings import load_settings
from cryptotrading.stores import Stores


def main() -> None:
    with Stores(load_settings()) as stores:
        print("started", flush=True)
        started = time.perf_counter()
        replicate_once(stores, batch_size=int(sys.argv[1]))
        print(f"done {time.perf_counter() - started:.3f}", flush=True)


if __name__ == "__main__":
    main()
