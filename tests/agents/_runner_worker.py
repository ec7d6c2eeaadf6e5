"""A workflow runner process, for the multi-runner and kill -9 tests.

``run URL STOP_FILE``: runs :meth:`WorkflowRunner.run` until STOP_FILE exists, then
prints what it did as JSON (totals of its passes).

``spawn URL``: imports everything once, then for each ``start`` line on stdin forks a
runner child (which opens its own connections: the spawner never connects) and prints
``pid N``; the child prints ``ready N`` once it has registered, then runs until the
test kills it with SIGKILL. A fork costs milliseconds where a fresh interpreter costs
most of a second, so a trial can kill many runners.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path

from cryptotrading.agents import QueuePolicy, RunnerPass, WorkflowRunner
from cryptotrading.db import create_store_engine

#: A killed runner's claimed replies come back after this lease (seconds).
LEASE_SECONDS = 0.5


def run(url: str, stop_file: str | None, *, announce: bool = False) -> Counter[str]:
    engine = create_store_engine(url)
    runner = WorkflowRunner(engine, policy=QueuePolicy(lease_seconds=LEASE_SECONDS))
    if announce:
        runner.register()
        os.write(1, f"ready {os.getpid()}\n".encode())  # one write: lines never interleave
    totals: Counter[str] = Counter()

    def count(done: RunnerPass) -> None:
        totals.update({k: v for k, v in done.as_dict().items() if v})

    stop = Path(stop_file) if stop_file else None
    runner.run(stop=lambda: stop is not None and stop.exists(), idle_seconds=0.05, on_pass=count)
    engine.dispose()
    return totals


def spawn(url: str) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed children are reaped at once
    create_store_engine(url).dispose()  # imports the driver (psycopg: 0.4 s); no connection
    for line in sys.stdin:
        if line.strip() != "start":
            break
        pid = os.fork()
        if pid == 0:  # the child: a runner until it is killed
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                run(url, None, announce=True)
            finally:
                os._exit(0)
        sys.stdout.write(f"pid {pid}\n")
        sys.stdout.flush()


def main(mode: str, url: str, *rest: str) -> None:
    if mode == "run":
        sys.stdout.write(json.dumps(dict(run(url, rest[0]))))
    elif mode == "spawn":
        spawn(url)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
