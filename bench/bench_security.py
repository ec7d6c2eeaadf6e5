"""Cost of the security primitives, as ratios against one AES-256-GCM seal+open.

    .venv/bin/python bench/bench_security.py [--repeat N]

* unlock: one vault unlock = Argon2id derivation of the data key with the default
  parameters + verification of the key check (what every CLI command or new process
  pays once);
* password verify: one Argon2id verification with argon2-cffi's default profile;
* API key verify: SHA-256 + constant-time compare (what every API request pays).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from cryptotrading.security import api_keys, passwords
from cryptotrading.security.crypto import (
    KdfParams,
    associated_data,
    derive_key,
    new_salt,
    open_sealed,
    seal,
)


def measure(action: Callable[[], object], repeat: int) -> float:
    """Median seconds of *action* over *repeat* runs (after one warm-up)."""
    action()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    key = os.urandom(32)
    aad = associated_data("api_credentials", 1, "binance", "api_secret", "vk-bench")
    secret = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    sealed = seal(key, secret, aad)
    baseline = measure(lambda: open_sealed(key, seal(key, secret, aad), aad), args.repeat * 100)

    params = KdfParams()
    master = os.urandom(32)
    salt = new_salt()
    check = seal(derive_key(master, salt, params), b"check", b"kc")

    def unlock() -> None:
        open_sealed(derive_key(master, salt, params), check, b"kc")

    password_hash = passwords.hash_password("correct horse battery staple")
    issued = api_keys.generate()
    plain_key = issued.key.get_secret_value()
    rows = [
        ("AES-256-GCM seal+open (baseline)", baseline),
        (
            "AES-256-GCM open of a stored secret",
            measure(lambda: open_sealed(key, sealed, aad), 1000),
        ),
        (
            f"vault unlock: Argon2id t={params.time_cost} m={params.memory_cost_kib // 1024}MiB "
            f"p={params.parallelism} + key check",
            measure(unlock, args.repeat),
        ),
        (
            "password verify (Argon2id, argon2-cffi defaults)",
            measure(
                lambda: passwords.verify_password(password_hash, "correct horse battery staple"),
                args.repeat,
            ),
        ),
        (
            "API key verify (SHA-256 + compare_digest)",
            measure(lambda: api_keys.matches(plain_key, issued.digest), 1000),
        ),
    ]
    print(f"{'operation':<62} {'median':>12} {'x baseline':>12}")
    for name, seconds in rows:
        print(f"{name:<62} {seconds * 1e3:>9.3f} ms {seconds / baseline:>12.3g}")


if __name__ == "__main__":
    main()
