"""Runs ``Vault.rotate_key`` in a subprocess for the kill -9 tests.

Usage: ``python rotation_worker.py PAUSE_AT`` with the CRYPTOTRADING_* environment of
the test's stores. Prints ``READY`` before rotating; when PAUSE_AT > 0 it prints
``PAUSED`` after re-encrypting that many credentials (inside the transaction) and
sleeps, waiting to be killed. Prints ``DONE <key id>`` after the commit.
"""

from __future__ import annotations

import sys
import time

from cryptotrading.security import KdfParams, Vault, load_master_secret
from cryptotrading.settings import load_settings
from cryptotrading.stores import Stores


def main() -> None:
    pause_at = int(sys.argv[1])
    settings = load_settings()
    with Stores(settings) as stores:
        vault = Vault(
            stores.engine(stores.app),
            load_master_secret(settings),
            kdf_params=KdfParams(time_cost=1, memory_cost_kib=1024, parallelism=1),
        )
        vault.unlock()

        def progress(done: int, total: int) -> None:
            if done == pause_at:
                print("PAUSED", flush=True)
                time.sleep(120)

        print("READY", flush=True)
        report = vault.rotate_key(progress=progress)
        print("DONE", report.new_key_id, flush=True)


if __name__ == "__main__":
    main()
