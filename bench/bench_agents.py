"""Agent message queue benchmark: throughput against a naive queue loop, exactly-once
delivery under concurrent consumers, and wake-up latency.

    .venv/bin/python bench/bench_agents.py [--backend sqlite|postgresql|both]
        [--messages 500] [--consumers 1,2,4] [--batch 100] [--repeat 3]
        [--latency-sends 200] [--quick] [--json]

Every figure comes from one run; ratios are against a baseline measured in the same
run, on the same store, with the same number of messages and consumers.

1. **Throughput.** For each consumer count, from an empty queue and change log,
   ``--messages`` messages are sent to a new receiver, then that many consumer
   *processes* (started once, before any timing) drain it. ``library``: the sender
   calls ``send_messages`` in batches of 500; each consumer loops
   ``claim_messages(limit=--batch)`` + ``acknowledge_many`` until a claim comes back
   empty. ``naive``: the classic queue loop -- one ``INSERT`` transaction per message
   sent; per message consumed, one transaction that selects the oldest pending row,
   then updates it to ``processed`` if it is still pending (a consumer that lost the
   race retries: ``conflicts``). Each consumer count runs ``--repeat`` rounds of
   both, back to back, alternating which goes first. Reported per backend and
   consumer count: the median send, drain and end-to-end (send + drain) messages/s
   of each mode over the rounds; the library/naive ratio of each, as the median of
   the rounds' ratios (library over naive of the same round; target >= 5x end to
   end); and every round's end-to-end figures (their spread shows the noise).
2. **No double delivery.** Each consumer reports every delivery (message id,
   receipt, attempt, claim and ack times); with a lease longer than the run every
   message must be delivered exactly once: no id delivered twice, none missing,
   none at attempt > 1, none whose leases overlap, none ``lost`` by
   ``acknowledge_many``, and every message ``processed`` in the store. A violation
   fails the run (exit status 1).
3. **Latency** from ``send_message`` (before the call) to the moment a consumer
   waiting in ``receive(wait_seconds=...)`` in another process has the message
   (claimed), over ``--latency-sends`` sends spaced by a random 50-150 ms: p50, p95,
   max. PostgreSQL wakes the consumer with ``LISTEN/NOTIFY`` (target p50 < 50 ms);
   SQLite polls (10 ms doubling to 0.5 s), shown for comparison.

``--quick`` is a smoke run (200 messages, 1 and 2 consumers, 1 round, 20 latency sends).
PostgreSQL stores are databases created under ``CRYPTOTRADING_TEST_PG_URL``
(default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``), dropped at the
end. Loads (``os.getloadavg``) are printed: figures compare on an idle machine only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, create_engine, func, insert, select, text

from cryptotrading import agents
from cryptotrading.common.clock import utcnow
from cryptotrading.db import create_store_engine
from cryptotrading.models.agents import A2AMessage
from cryptotrading.ops.lifecycle import initialize
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores

PG_ADMIN = os.environ.get(
    "CRYPTOTRADING_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
WORKER = Path(__file__).with_name("_agents_worker.py")
SENDER = "bench-sender"
SEND_BATCH = 500
LEASE = 600.0  # seconds: longer than any run, so a second delivery is a bug
GAP = (0.05, 0.15)  # seconds between latency sends
TARGET_RATIO, TARGET_P50_MS = 5.0, 50.0


def log(message: str) -> None:
    """Progress on stderr (stdout carries the table or the JSON document)."""
    print(message, file=sys.stderr, flush=True)


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# -- stores and consumer processes --------------------------------------------------------


class Workspace:
    """A fresh migrated single-layout store (SQLite file or PostgreSQL database)."""

    def __init__(self, backend: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bench-agents-"))
        self.database: str | None = None
        self.admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        overrides: dict[str, Any] = {"data_dir": self.root / "data", "layout": "single"}
        if backend == "postgresql":
            self.database = f"bench_agents_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            with self.admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{self.database}"'))
            overrides["app_url"] = self.admin.url.set(database=self.database).render_as_string(
                hide_password=False
            )
        with Stores(Settings(**overrides)) as stores:
            initialize(stores)
            self.url = stores.app.url
        # The engine the consumer processes use too (no slow-query hook: nothing is
        # left to store into a database dropped at the end).
        self.engine = create_store_engine(self.url)

    def close(self) -> None:
        self.engine.dispose()
        if self.database:
            with self.admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        self.admin.dispose()
        shutil.rmtree(self.root, ignore_errors=True)


class Worker:
    """One ``_agents_worker.py`` process (see its doc for the protocol)."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    @property
    def _stdin(self) -> IO[str]:
        assert self.process.stdin is not None
        return self.process.stdin

    def send(self, command: dict[str, Any] | str) -> None:
        line = command if isinstance(command, str) else json.dumps(command)
        self._stdin.write(line + "\n")
        self._stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait(timeout=10)
            raise SystemExit(f"a consumer process ended (exit status {code}); see stderr")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        self._stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def new_receiver(engine: Engine, label: str) -> str:
    receiver = f"{label}-{uuid.uuid4().hex[:8]}"
    agents.register_agent(engine, receiver, "bench-consumer")
    agents.connect_agents(engine, SENDER, receiver)
    return receiver


# -- 1 + 2. throughput and exactly-once delivery ------------------------------------------


def send_library(engine: Engine, receiver: str, count: int) -> list[str]:
    ids: list[str] = []
    for first in range(0, count, SEND_BATCH):
        batch = [
            agents.Outgoing(receiver, {"n": n})
            for n in range(first, min(count, first + SEND_BATCH))
        ]
        ids.extend(m.message_id for m in agents.send_messages(engine, SENDER, batch))
    return ids


def send_naive(engine: Engine, receiver: str, count: int) -> list[str]:
    ids: list[str] = []
    for n in range(count):
        message_id = str(uuid.uuid4())
        with engine.begin() as connection:
            connection.execute(
                insert(A2AMessage),
                {
                    "message_id": message_id,
                    "sender_id": SENDER,
                    "receiver_id": receiver,
                    "message_type": "message",
                    "payload": {"n": n},
                    "status": "pending",
                    "priority": 0,
                    "attempts": 0,
                    "max_attempts": 5,
                    "created_at": utcnow(),
                },
            )
        ids.append(message_id)
    return ids


def verify(
    engine: Engine, receiver: str, sent: list[str], results: list[dict[str, Any]]
) -> dict[str, int]:
    """Delivery faults of one run: every count must be 0."""
    deliveries: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    late = 0
    for consumer, result in enumerate(results):
        for message_id, _receipt, attempts, claimed, acked in result["records"]:
            deliveries[message_id].append((consumer, claimed, acked))
            late += attempts != 1
    overlapping = 0
    for spans in deliveries.values():
        spans.sort(key=lambda span: span[1])
        overlapping += sum(
            1
            for (_, claimed, acked), (_, again, _) in itertools.pairwise(spans)
            if again < min(acked, claimed + LEASE)
        )
    with engine.connect() as connection:
        statuses = Counter(
            dict(
                connection.execute(
                    select(A2AMessage.status, func.count())
                    .where(A2AMessage.receiver_id == receiver)
                    .group_by(A2AMessage.status)
                ).all()
            )
        )
    wanted = set(sent)
    return {
        "delivered_twice": sum(len(spans) - 1 for spans in deliveries.values()),
        "overlapping_leases": overlapping,
        "missing": len(wanted - set(deliveries)),
        "unknown": len(set(deliveries) - wanted),
        "attempt_over_1": late,
        "ack_lost": sum(len(result["lost"]) for result in results),
        "not_processed": sum(statuses.values()) - statuses["processed"],
    }


def reset(engine: Engine) -> None:
    """Every run starts from the same state: no messages, an empty change log (the
    capture triggers log each message change), fresh statistics on PostgreSQL."""
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM a2a_messages"))
        connection.execute(text("DELETE FROM change_log"))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE a2a_messages, change_log"))


def throughput(
    engine: Engine, workers: list[Worker], mode: str, consumers: int, count: int, batch: int
) -> dict[str, Any]:
    reset(engine)
    receiver = new_receiver(engine, f"{mode}-{consumers}")
    began = time.perf_counter()
    sent = (send_library if mode == "library" else send_naive)(engine, receiver, count)
    send_seconds = time.perf_counter() - began
    active = workers[:consumers]
    command = {"op": "consume", "mode": mode, "receiver": receiver, "batch": batch, "lease": LEASE}
    for worker in active:
        worker.send(command)
    for worker in active:
        worker.read()  # ready
    start = time.time()
    for worker in active:
        worker.send("go")
    results = [worker.read() for worker in active]
    drain_seconds = max(result["end"] for result in results) - start
    faults = verify(engine, receiver, sent, results)
    return {
        "mode": mode,
        "consumers": consumers,
        "messages": count,
        "send_per_s": count / send_seconds,
        "drain_per_s": count / drain_seconds,
        "end_to_end_per_s": count / (send_seconds + drain_seconds),
        "per_consumer": [len(result["records"]) for result in results],
        "conflicts": sum(result["conflicts"] for result in results),
        "faults": faults,
    }


# -- 3. latency to a waiting consumer ------------------------------------------------------


def latency(engine: Engine, worker: Worker, sends: int, rng: random.Random) -> dict[str, Any]:
    receiver = new_receiver(engine, "latency")
    worker.send({"op": "listen", "receiver": receiver, "count": sends, "wait": 30})
    worker.read()  # ready
    time.sleep(0.3)
    millis: list[float] = []
    for n in range(sends):
        time.sleep(rng.uniform(*GAP))
        began = time.time()
        message = agents.send_message(engine, SENDER, receiver, {"n": n})
        got = worker.read()
        if got["id"] != message.message_id:
            raise SystemExit(f"latency consumer got {got['id']}, expected {message.message_id}")
        millis.append((got["t"] - began) * 1000)
    worker.read()  # done
    return {
        "sends": sends,
        "p50_ms": statistics.median(millis),
        "p95_ms": percentile(millis, 0.95),
        "max_ms": max(millis),
        "mean_ms": statistics.fmean(millis),
    }


# -- one backend ----------------------------------------------------------------------------


def bench_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    log(f"{backend}: preparing the store (load {load()})")
    ws = Workspace(backend)
    workers: list[Worker] = []
    try:
        agents.register_agent(ws.engine, SENDER, "bench-sender")
        workers = [Worker(ws.url) for _ in range(max(args.consumers))]
        for mode in ("naive", "library"):  # warm-up: caches, plans, connections
            throughput(ws.engine, workers, mode, len(workers), 40 * len(workers), args.batch)
        runs: list[dict[str, Any]] = []
        for consumers in args.consumers:
            for number in range(args.repeat):  # alternate which mode goes first
                for mode in ("naive", "library")[:: 1 if number % 2 == 0 else -1]:
                    run = throughput(ws.engine, workers, mode, consumers, args.messages, args.batch)
                    runs.append({**run, "round": number + 1})
                    log(
                        f"  {mode:7} x{consumers} #{number + 1}: send {run['send_per_s']:8,.0f}/s"
                        f"  drain {run['drain_per_s']:8,.0f}/s  end-to-end "
                        f"{run['end_to_end_per_s']:8,.0f}/s  split {run['per_consumer']}  "
                        f"conflicts {run['conflicts']}  faults {sum(run['faults'].values())}"
                        f" (load {load()})"
                    )
        rng = random.Random(13)
        log(f"  latency: {args.latency_sends} sends to a waiting consumer")
        waited = latency(ws.engine, workers[0], args.latency_sends, rng)
        log(f"  latency p50 {waited['p50_ms']:.1f} ms p95 {waited['p95_ms']:.1f} ms")
    finally:
        for worker in workers:
            worker.close()
        ws.close()
    return {"backend": backend, "load": load(), "runs": runs, "latency": waited}


RATES = ("send", "drain", "end_to_end")


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per mode and consumer count, the median of the rounds for each rate."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for run in result["runs"]:
        groups[(run["mode"], run["consumers"])].append(run)
    return [
        {
            "mode": mode,
            "consumers": consumers,
            "rounds": len(runs),
            **{
                f"{what}_per_s": statistics.median(run[f"{what}_per_s"] for run in runs)
                for what in RATES
            },
            "end_to_end_rounds": [run["end_to_end_per_s"] for run in runs],
            "conflicts": max(run["conflicts"] for run in runs),
            "faults": sum(sum(run["faults"].values()) for run in runs),
        }
        for (mode, consumers), runs in groups.items()
    ]


def ratios(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Library/naive ratios per consumer count: each round's library rate over the
    same round's naive rate (measured back to back), median over the rounds."""
    rate = {(r["mode"], r["consumers"], r["round"]): r for r in result["runs"]}
    out = []
    for consumers in sorted({r["consumers"] for r in result["runs"]}):
        rounds = sorted({r["round"] for r in result["runs"] if r["consumers"] == consumers})
        paired = {
            what: [
                rate[("library", consumers, n)][f"{what}_per_s"]
                / rate[("naive", consumers, n)][f"{what}_per_s"]
                for n in rounds
            ]
            for what in RATES
        }
        out.append(
            {
                "consumers": consumers,
                **{f"{what}_ratio": statistics.median(paired[what]) for what in RATES},
                "end_to_end_ratio_rounds": paired["end_to_end"],
            }
        )
    return out


def report(results: list[dict[str, Any]]) -> None:
    for result in results:
        print(f"{result['backend']} (load {result['load']}), medians of the rounds")
        print(
            f"  {'consumers':>9}  {'mode':7}  {'send/s':>9}  {'drain/s':>9}  "
            f"{'end-to-end/s':>12}  {'conflicts':>9}  faults  end-to-end/s per round"
        )
        for run in result["summary"]:
            rounds = ", ".join(f"{rate:,.0f}" for rate in run["end_to_end_rounds"])
            print(
                f"  {run['consumers']:>9}  {run['mode']:7}  {run['send_per_s']:9,.0f}  "
                f"{run['drain_per_s']:9,.0f}  {run['end_to_end_per_s']:12,.0f}  "
                f"{run['conflicts']:9}  {run['faults']:6}  {rounds}"
            )
        for ratio in result["ratios"]:
            verdict = "ok" if ratio["end_to_end_ratio"] >= TARGET_RATIO else "BELOW TARGET"
            rounds = ", ".join(f"{value:.1f}" for value in ratio["end_to_end_ratio_rounds"])
            print(
                f"  x{ratio['consumers']} library/naive (median of rounds): "
                f"end to end {ratio['end_to_end_ratio']:.1f}x"
                f" ({verdict}, target >= {TARGET_RATIO:.0f}x; rounds {rounds}),"
                f" send {ratio['send_ratio']:.1f}x, drain {ratio['drain_ratio']:.1f}x"
            )
        lat = result["latency"]
        how = "LISTEN/NOTIFY" if result["backend"] == "postgresql" else "polling"
        target = ""
        if result["backend"] == "postgresql":
            target = " ok" if lat["p50_ms"] < TARGET_P50_MS else " ABOVE TARGET"
            target += f" (target p50 < {TARGET_P50_MS:.0f} ms)"
        print(
            f"  send -> waiting consumer ({how}, {lat['sends']} sends): p50 {lat['p50_ms']:.1f} ms,"
            f" p95 {lat['p95_ms']:.1f} ms, max {lat['max_ms']:.1f} ms{target}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--consumers", default="1,2,4")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per consumer count")
    parser.add_argument("--latency-sends", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny sizes")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.consumers, args.latency_sends, args.repeat = 200, "1,2", 20, 1
    args.consumers = [int(n) for n in str(args.consumers).split(",")]
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results = []
    for backend in backends:
        result = bench_backend(backend, args)
        result["summary"] = summary(result)
        result["ratios"] = ratios(result)
        results.append(result)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        report(results)
    faulty = [
        f"{result['backend']} {run['mode']} x{run['consumers']}: {run['faults']}"
        for result in results
        for run in result["runs"]
        if any(run["faults"].values())
    ]
    if faulty:
        log("delivery faults:\n  " + "\n  ".join(faulty))
        sys.exit(1)


if __name__ == "__main__":
    main()
