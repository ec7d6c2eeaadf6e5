"""Replication benchmark: the cost of change capture, lag under load, idle cost.

    .venv/bin/python bench/bench_replication.py [--backend sqlite|postgresql|both]
        [--rows-per-symbol 100000] [--repeat 3] [--changed 1000]
        [--rate 2000] [--lag-seconds 20] [--intervals 0.1,1] [--idle-seconds 20]
        [--library-share 0.05] [--pg-replica postgresql|sqlite]
        [--parts capture,import,idle,lag] [--json]

Every figure comes from one run; ratios are against a baseline measured in the same run.

1. **Ingest, capture on vs off.** 10 symbols x ``--rows-per-symbol`` 1m candles
   (``bench_market``'s data) through ``MarketStore.write_ohlcv`` into a fresh migrated
   market store with the capture triggers, and into one where
   ``capture.uninstall(connection, "market")`` removed them; the two alternate,
   ``--repeat`` times, best of each. Ratio = rows/s with capture / rows/s without
   (target >= 0.8).
2. **A pass after a bulk import** (stores with a replica, in sync before): the same
   candles imported once with capture, then ``replicate_once``: time and rows copied;
   the next pass must copy 0. Then a **re-import with ``--changed`` candles altered**
   (close and volume, spread over all symbols): the next pass's time and rows, and
   the altered candles compared value for value in the replica.
3. **Idle ``cryptotrading replicate --follow``** (default interval) on those stores:
   process CPU seconds / wall seconds over ``--idle-seconds`` (psutil, from the first
   pass on), rows copied by its passes (target 0), and one in-process idle pass.
4. **Lag under load.** Two writer processes make ``--rate`` changes/s together for
   ``--lag-seconds`` on two application tables: plain SQL on ``historical_data_cache``
   (one transaction per 50 ms tick: a multi-row INSERT, an UPDATE from a VALUES list,
   a DELETE ... IN) and, ``--library-share`` of them (5 %; a library call is a
   transaction of ~5 ms), through the library on ``cache_entries``
   (``services.cache.Cache.set`` / ``delete``). A third each of inserts, updates (of
   a random live row) and deletes (of rows older than ``--delete-age`` s). Every
   change carries a number (``row_count`` / the cached value's ``v``) and its commit
   time. ``cryptotrading replicate --follow --interval I`` runs in another process;
   this process polls the replica every ``--poll`` s. Lag of a change = the first
   poll at which the replica shows that change (or a later state of the row) - its
   commit time. Reported per interval: median, p95, max; changes never seen
   (``unresolved``) and rows whose replica state went backwards (``regressions``)
   must be 0.
5. Loads (``os.getloadavg``) are printed with each part: the figures are only
   comparable on an otherwise idle machine.

PostgreSQL stores are databases created under ``CRYPTOTRADING_TEST_PG_URL``
(default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) and dropped at
the end; the replica is another database there (``--pg-replica postgresql``, the
change-log path: no ``replicate setup``) or ``rex.db`` (``--pg-replica sqlite``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import bindparam, create_engine, text  # noqa: E402

from bench.bench_market import frames  # noqa: E402
from cryptotrading.market import MarketStore  # noqa: E402
from cryptotrading.migrations import capture  # noqa: E402
from cryptotrading.ops.lifecycle import initialize  # noqa: E402
from cryptotrading.ops.replication import TableRun, replicate_once  # noqa: E402
from cryptotrading.settings import Settings  # noqa: E402
from cryptotrading.stores import Stores  # noqa: E402

PG_ADMIN = os.environ.get(
    "CRYPTOTRADING_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PROGRAM = Path(sys.executable).parent / "cryptotrading"
TICK = 0.05  # seconds per writer tick
INF = float("inf")


def log(message: str) -> None:
    """Progress on stderr (stdout carries the table or the JSON document)."""
    print(message, file=sys.stderr, flush=True)


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def timed(action: Callable[[], Any]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def copied(runs: list[TableRun], table: str | None = None) -> int:
    """Rows a pass copied (of *table*, e.g. ``market.time_series``, or of all)."""
    return sum(run.rows for run in runs if table is None or run.table == table)


# -- stores -----------------------------------------------------------------------------


class Workspace:
    """Fresh migrated stores (SQLite files or PostgreSQL databases), removed at the end."""

    def __init__(self, backend: str, pg_replica: str) -> None:
        self.backend = backend
        self.pg_replica = pg_replica
        self.root = Path(tempfile.mkdtemp(prefix="bench-replication-"))
        self.count = 0
        self.databases: list[str] = []
        self.admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")

    def _database(self) -> str:
        name = f"bench_repl_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self.databases.append(name)
        return str(self.admin.url.set(database=name).render_as_string(False))

    def settings(self, *, replica: bool) -> Settings:
        """Settings of new, migrated stores (with a replica store when *replica*)."""
        self.count += 1
        data_dir = self.root / f"d{self.count}"
        overrides: dict[str, Any] = {"data_dir": data_dir, "layout": "three"}
        if self.backend == "postgresql":
            names = ["app_url", "market_url"]
            if replica and self.pg_replica == "postgresql":
                names.append("replica_url")
            overrides.update({name: self._database() for name in names})
        settings = Settings(**overrides)
        with Stores(settings) as stores:
            initialize(stores)
        return settings

    def remove(self, settings: Settings) -> None:
        """Drop the stores of *settings* (disk space: 1M candles are ~120 MB)."""
        for url in (settings.app_url, settings.market_url, settings.replica_url):
            if url:
                name = url.rsplit("/", 1)[1]
                with self.admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                self.databases.remove(name)
        shutil.rmtree(settings.data_dir, ignore_errors=True)

    def close(self) -> None:
        with self.admin.connect() as connection:
            for name in self.databases:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()
        shutil.rmtree(self.root, ignore_errors=True)


def environment(settings: Settings) -> dict[str, str]:
    """The environment that makes ``cryptotrading`` open *settings*' stores."""
    env = {
        **os.environ,
        "CRYPTOTRADING_DATA_DIR": str(settings.data_dir),
        "CRYPTOTRADING_LAYOUT": settings.layout,
    }
    for name in ("app_url", "market_url", "replica_url"):
        value = getattr(settings, name)
        if value:
            env[f"CRYPTOTRADING_{name.upper()}"] = value
    return env


def ingest(stores: Stores, data: dict[str, pd.DataFrame]) -> float:
    market = MarketStore(stores)
    return timed(lambda: [market.write_ohlcv(f, symbol=s, timeframe="1m") for s, f in data.items()])


def scalar(stores: Stores, store: str, sql: str) -> int:
    with stores.engine(store).connect() as connection:
        return int(connection.exec_driver_sql(sql).scalar() or 0)


# -- 1. ingest with capture on vs off ----------------------------------------------------


def bench_capture(ws: Workspace, data: dict[str, pd.DataFrame], repeat: int) -> dict[str, Any]:
    total = sum(len(frame) for frame in data.values())
    best = {"on": INF, "off": INF}
    ratios = []
    log_rows = 0
    for number in range(repeat):
        order = ("on", "off") if number % 2 == 0 else ("off", "on")
        times = {}
        for mode in order:
            settings = ws.settings(replica=False)
            with Stores(settings) as stores:
                if mode == "off":
                    with stores.engine(stores.market).begin() as connection:
                        capture.uninstall(connection, "market")
                times[mode] = ingest(stores, data)
                logged = scalar(stores, "market", "SELECT count(*) FROM series_changes")
                if mode == "on":
                    log_rows = logged
                elif logged:
                    raise SystemExit(f"capture off still logged {logged} series ranges")
            ws.remove(settings)
            best[mode] = min(best[mode], times[mode])
        ratios.append(times["off"] / times["on"])
        log(
            f"  ingest #{number + 1}: capture on {total / times['on']:,.0f} rows/s, "
            f"off {total / times['off']:,.0f} rows/s (load {load()})"
        )
    return {
        "candles": total,
        "repeat": repeat,
        "on_rows_per_s": total / best["on"],
        "off_rows_per_s": total / best["off"],
        "ratio_best": best["off"] / best["on"],
        "ratios": ratios,
        "series_log_rows": log_rows,
    }


# -- 2. a pass after a bulk import; re-import of changed candles ---------------------------


def altered(
    data: dict[str, pd.DataFrame], count: int
) -> tuple[dict[str, pd.DataFrame], dict[str, np.ndarray]]:
    """Copies of *data* with *count* candles changed (close to the high/low midpoint,
    volume + 1: still valid), spread over all symbols; and the changed positions."""
    rng = np.random.default_rng(11)
    out, where = {}, {}
    per_symbol = max(1, count // len(data))
    for symbol, frame in data.items():
        rows = np.sort(rng.choice(len(frame), size=min(per_symbol, len(frame)), replace=False))
        changed = frame.copy()
        changed.loc[rows, "close"] = (frame["high"][rows] + frame["low"][rows]) / 2
        changed.loc[rows, "volume"] = frame["volume"][rows] + 1.0
        out[symbol], where[symbol] = changed, rows
    return out, where


CHANGED_ROWS = text(
    "SELECT timestamp, close, volume FROM time_series WHERE symbol = :s"
    " AND frequency = '1m' AND timestamp IN :ts"
).bindparams(bindparam("ts", expanding=True))


def compare_changed(
    stores: Stores, data: dict[str, pd.DataFrame], where: dict[str, np.ndarray]
) -> int:
    """How many of the changed candles differ between the replica and the new values."""
    wrong = 0
    with stores.engine("replica").connect() as connection:
        for symbol, rows in where.items():
            frame = data[symbol].iloc[rows]
            stamps = [int(ts) for ts in frame["timestamp"]]
            found: dict[int, tuple[float, float]] = {}
            for start in range(0, len(stamps), 500):
                chunk = stamps[start : start + 500]
                result = connection.execute(CHANGED_ROWS, {"s": symbol, "ts": chunk})
                found.update({int(ts): (c, v) for ts, c, v in result})
            for ts, close, volume in zip(stamps, frame["close"], frame["volume"], strict=True):
                if found.get(ts) != (float(close), float(volume)):
                    wrong += 1
    return wrong


def bench_import(
    stores: Stores, data: dict[str, pd.DataFrame], changed_count: int
) -> dict[str, Any]:
    total = sum(len(frame) for frame in data.values())
    first = replicate_once(stores)  # empty stores: the first (initial) pass
    log(f"  first pass on empty stores: {copied(first)} rows")
    imported = ingest(stores, data)
    started = time.perf_counter()
    runs = replicate_once(stores)
    pass_seconds = time.perf_counter() - started
    started = time.perf_counter()
    again = replicate_once(stores)
    again_seconds = time.perf_counter() - started
    log(
        f"  import {total:,} candles {imported:.2f} s; pass {pass_seconds:.2f} s "
        f"{copied(runs):,} rows; next pass {again_seconds:.3f} s {copied(again)} rows"
    )
    new_data, where = altered(data, changed_count)
    changed_total = sum(len(rows) for rows in where.values())
    reimported = ingest(stores, new_data)
    started = time.perf_counter()
    reimport_runs = replicate_once(stores)
    reimport_seconds = time.perf_counter() - started
    wrong = compare_changed(stores, new_data, where)
    after = replicate_once(stores)
    counts = [
        scalar(stores, store, "SELECT count(*) FROM time_series") for store in ("market", "replica")
    ]
    log(
        f"  re-import with {changed_total} changed: {reimported:.2f} s; pass "
        f"{reimport_seconds:.2f} s {copied(reimport_runs):,} rows; {wrong} wrong in the replica"
    )
    return {
        "candles": total,
        "import_seconds": imported,
        "pass_seconds": pass_seconds,
        "pass_rows": copied(runs),
        "pass_candles": copied(runs, "market.time_series"),
        "next_pass_seconds": again_seconds,
        "next_pass_rows": copied(again),
        "changed_candles": changed_total,
        "reimport_seconds": reimported,
        "reimport_pass_seconds": reimport_seconds,
        "reimport_pass_rows": copied(reimport_runs),
        "changed_wrong_in_replica": wrong,
        "after_reimport_pass_rows": copied(after),
        "source_candles": counts[0],
        "replica_candles": counts[1],
    }


# -- follow processes ----------------------------------------------------------------------


@contextmanager
def following(settings: Settings, workdir: Path, *options: str) -> Iterator[dict[str, Any]]:
    """``cryptotrading replicate --follow --json *options*`` running; yields a dict
    with its ``process``, ``out`` file, after the first pass; on exit SIGTERM, and
    ``rc`` / ``traceback`` / ``passes`` / ``rows`` filled in."""
    tag = uuid.uuid4().hex[:6]
    out, err = workdir / f"follow-{tag}.out", workdir / f"follow-{tag}.err"
    command = [str(PROGRAM), "replicate", "--follow", "--json", *options]
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(command, env=environment(settings), stdout=stdout, stderr=stderr)
    info: dict[str, Any] = {"process": process, "out": out}
    try:
        deadline = time.monotonic() + 120
        while not out.read_text().strip():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"replicate --follow did not start: {err.read_text()[-2000:]}")
            time.sleep(0.02)
        watched = psutil.Process(process.pid)
        before, wall = watched.cpu_times(), time.perf_counter()
        yield info
        after = watched.cpu_times()
        info["wall"] = time.perf_counter() - wall
        info["cpu_seconds"] = after.user + after.system - before.user - before.system
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            info["rc"] = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            info["rc"] = process.wait()
        errors = err.read_text()
        info["traceback"] = "Traceback" in errors
        lines = [line for line in out.read_text().splitlines() if line.startswith("[")]
        info["passes"] = len(lines)
        info["rows_per_pass"] = [sum(run["rows"] for run in json.loads(line)) for line in lines]


# -- 3. idle follow -------------------------------------------------------------------------


def bench_idle(settings: Settings, stores: Stores, seconds: float, workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    idle_runs = replicate_once(stores)
    idle_pass = time.perf_counter() - started
    with following(settings, workdir) as info:
        process = psutil.Process(info["process"].pid)
        first_lines = len(info["out"].read_text().splitlines())
        before, wall = process.cpu_times(), time.perf_counter()
        time.sleep(seconds)
        after, wall = process.cpu_times(), time.perf_counter() - wall
    cpu = (after.user + after.system) - (before.user + before.system)
    later = info["rows_per_pass"][first_lines:]
    result = {
        "seconds": wall,
        "cpu_seconds": cpu,
        "cpu_share": cpu / wall,
        "passes": len(later),
        "rows_copied": sum(later),
        "in_process_pass_seconds": idle_pass,
        "in_process_pass_rows": copied(idle_runs),
        "follow_rc": info["rc"],
        "follow_traceback": info["traceback"],
    }
    log(
        f"  idle follow: {cpu:.3f} CPU s in {wall:.1f} s ({100 * cpu / wall:.2f} %), "
        f"{len(later)} passes, {sum(later)} rows; one pass {idle_pass * 1000:.0f} ms "
        f"{copied(idle_runs)} rows (load {load()})"
    )
    return result


# -- 4. lag under load ------------------------------------------------------------------------


def plain_statements(
    batch: list[tuple[int, str, str, str]], mark: str
) -> list[tuple[str, list[Any]]]:
    """One tick's plain-SQL changes as (at most) three statements: a multi-row INSERT,
    an UPDATE from a VALUES list (the highest number per row), a DELETE ... IN."""
    inserts = [(key, number) for number, _table, op, key in batch if op == "i"]
    updates = {key: number for number, _table, op, key in batch if op == "u"}
    deletes = [key for _number, _table, op, key in batch if op == "d"]
    out: list[tuple[str, list[Any]]] = []
    if inserts:
        values = ", ".join(f"({mark}, 'bench', '{{}}', {mark})" for _ in inserts)
        out.append(
            (
                "INSERT INTO historical_data_cache (query_hash, query_text, result_data,"
                f" row_count) VALUES {values}",
                [value for row in inserts for value in row],
            )
        )
    if updates:
        values = ", ".join(f"({mark}, {mark})" for _ in updates)
        out.append(
            (
                "UPDATE historical_data_cache SET row_count = v.column2"
                f" FROM (VALUES {values}) AS v WHERE query_hash = v.column1",
                [value for row in updates.items() for value in row],
            )
        )
    if deletes:
        marks = ", ".join(mark for _ in deletes)
        out.append((f"DELETE FROM historical_data_cache WHERE query_hash IN ({marks})", deletes))
    return out


class Rows:
    """A writer's live rows of one table: random pick, oldest first, O(1) removal."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.next = 0
        self.keys: list[str] = []
        self.index: dict[str, int] = {}
        self.born: dict[str, float] = {}
        self.order: list[str] = []  # insertion order (deleted keys skipped lazily)
        self.head = 0

    def new(self, now: float) -> str:
        key = f"{self.prefix}{self.next}"
        self.next += 1
        self.index[key] = len(self.keys)
        self.keys.append(key)
        self.born[key] = now
        self.order.append(key)
        return key

    def pick(self, rng: random.Random) -> str | None:
        return rng.choice(self.keys) if self.keys else None

    def oldest(self, older_than: float) -> str | None:
        while self.head < len(self.order) and self.order[self.head] not in self.index:
            self.head += 1
        if self.head == len(self.order):
            return None
        key = self.order[self.head]
        return key if self.born[key] <= older_than else None

    def remove(self, key: str) -> None:
        position = self.index.pop(key)
        last = self.keys.pop()
        if last != key:
            self.keys[position] = last
            self.index[last] = position


def choose(
    rows: Rows, op: str, now: float, delete_age: float, rng: random.Random
) -> tuple[str, str]:
    """(operation, key) for the next change of *rows*: deletes only of rows older
    than *delete_age*, updates of a random live row; otherwise an insert."""
    if op == "d":
        key = rows.oldest(now - delete_age)
        if key is not None:
            rows.remove(key)
            return "d", key
        op = "u"
    if op == "u":
        key = rows.pick(rng)
        if key is not None:
            return "u", key
    return "i", rows.new(now)


def writer(
    role: str, tag: str, out: str, per_second: int, seconds: float, delete_age: float
) -> None:
    """The load of one *role*: ``sql`` (plain SQL on ``historical_data_cache``, one
    transaction per tick) or ``lib`` (``Cache.set`` / ``delete``, a transaction each),
    *per_second* changes for *seconds*; records (number, table, op, key, committed)
    in *out* as JSON."""
    from cryptotrading.services.cache import Cache
    from cryptotrading.settings import load_settings

    rng = random.Random(5)
    records: list[tuple[int, str, str, str, float]] = []
    with Stores(load_settings()) as stores:
        cache = Cache(stores.engine(stores.app))
        path = stores.app.path
        raw: Any = None
        if role == "lib":
            pass
        elif path is not None:
            raw = sqlite3.connect(path, timeout=30, isolation_level=None)
            raw.execute("PRAGMA busy_timeout = 30000")
        else:
            import psycopg

            url = stores.engine(stores.app).url.set(drivername="postgresql")
            raw = psycopg.connect(url.render_as_string(hide_password=False))
        mark = "?" if path is not None else "%s"
        rows = Rows(f"{role}-{tag}-")
        per_tick = per_second * TICK
        number = 0
        busy = 0.0
        began = time.monotonic()
        tick = 0
        while time.monotonic() - began < seconds:
            spent = time.perf_counter()
            count = round(per_tick * (tick + 1)) - round(per_tick * tick)
            if role == "lib":
                for _ in range(count):
                    number += 1
                    op, key = choose(rows, "iud"[number % 3], time.time(), delete_age, rng)
                    if op == "d":
                        cache.delete(key)
                    else:
                        cache.set(key, {"v": number})
                    records.append((number, role, op, key, time.time()))
            elif count:
                batch = []
                now = time.time()
                for _ in range(count):
                    number += 1
                    batch.append(
                        (number, role, *choose(rows, "iud"[number % 3], now, delete_age, rng))
                    )
                if path is not None:
                    raw.execute("BEGIN IMMEDIATE")
                for statement, parameters in plain_statements(batch, mark):
                    raw.execute(statement, parameters)
                raw.execute("COMMIT") if path is not None else raw.commit()
                committed = time.time()
                records += [(*change, committed) for change in batch]
            busy += time.perf_counter() - spent
            tick += 1
            pause = began + tick * TICK - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        elapsed = time.monotonic() - began
        if raw is not None:
            raw.close()
    with open(out, "w") as handle:
        json.dump({"seconds": elapsed, "busy_seconds": busy, "records": records}, handle)


class Poller:
    """Polls the replica's copies of the writer's rows (a raw driver connection, one
    snapshot per query); keeps, per row, the moments its state changed. State: the
    change number it carries; a row gone after being seen is +inf (deleted: later
    than every number)."""

    def __init__(self, stores: Stores, tag: str) -> None:
        replica = stores.get("replica")
        self.raw: Any
        if replica.path is not None:
            self.raw = sqlite3.connect(replica.path, isolation_level=None)
            version = "json_extract(value, '$.v')"
        else:
            import psycopg

            url = stores.engine(replica).url.set(drivername="postgresql")
            self.raw = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
            version = "(value->>'v')::bigint"
        self.queries = [
            f"SELECT cache_key, {version} FROM cache_entries WHERE cache_key LIKE 'lib-{tag}-%'",
            "SELECT query_hash, row_count FROM historical_data_cache"
            f" WHERE query_hash LIKE 'sql-{tag}-%'",
        ]
        self.present: set[str] = set()
        self.state: dict[str, float] = {}
        self.changes: dict[str, list[tuple[float, float]]] = {}
        self.regressions = 0
        self.polls = 0
        self.poll_seconds = 0.0

    def close(self) -> None:
        self.raw.close()

    def poll(self) -> None:
        moment = time.time()
        started = time.perf_counter()
        seen: dict[str, float] = {}
        for query in self.queries:
            seen.update(self.raw.execute(query).fetchall())
        self.poll_seconds += time.perf_counter() - started
        self.polls += 1
        for row in self.present.difference(seen):
            self._record(row, INF, moment)
        for row, state in seen.items():
            if self.state.get(row) != state:
                self._record(row, float(state), moment)
        self.present = set(seen)

    def _record(self, row: str, state: float, moment: float) -> None:
        previous = self.state.get(row)
        if previous is not None and state < previous:
            self.regressions += 1
        self.state[row] = state
        self.changes.setdefault(row, []).append((moment, state))

    def visible(self, row: str, number: float) -> float | None:
        """When the replica first showed *row* at change *number* or later."""
        for moment, state in self.changes.get(row, []):
            if state >= number:
                return moment
        return None


def finals(records: list[list[Any]]) -> dict[str, float]:
    last: dict[str, float] = {}
    for number, _table, op, key, _committed in records:
        last[key] = INF if op == "d" else float(number)
    return last


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def bench_lag(
    settings: Settings,
    stores: Stores,
    interval: float,
    rate: int,
    seconds: float,
    delete_age: float,
    share: float,
    poll_every: float,
    workdir: Path,
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    poller = Poller(stores, tag)
    out = workdir / f"writer-{tag}.json"
    with following(settings, workdir, "--interval", str(interval)) as info:
        library = round(rate * share)
        processes = {}
        for role, per_second in (("sql", rate - library), ("lib", library)):
            command = [sys.executable, __file__, "_writer", role, tag, f"{out}.{role}"]
            command += [str(per_second), str(seconds), str(delete_age)]
            processes[role] = subprocess.Popen(command, env=environment(settings))
        load_before = load()
        while any(process.poll() is None for process in processes.values()):
            poller.poll()
            time.sleep(poll_every)
        if any(process.returncode for process in processes.values()):
            raise SystemExit("a writer failed")
        documents = {role: json.loads(Path(f"{out}.{role}").read_text()) for role in processes}
        records = [record for d in documents.values() for record in d["records"]]
        document = {
            "seconds": max(d["seconds"] for d in documents.values()),
            **{f"{role}_busy_seconds": d["busy_seconds"] for role, d in documents.items()},
        }
        expected = finals(records)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the replica holds the final states
            poller.poll()
            if all(poller.state.get(row, -1.0) == state for row, state in expected.items()):
                break
            time.sleep(poll_every)
        load_after = load()
    poller.close()
    lags, unresolved = [], 0
    for number, _table, op, key, committed in records:
        seen = poller.visible(key, INF if op == "d" else float(number))
        if seen is None:
            unresolved += 1
        else:
            lags.append(seen - committed)
    by_op: dict[str, int] = {}
    for _number, table, op, _key, _committed in records:
        by_op[f"{table}:{op}"] = by_op.get(f"{table}:{op}", 0) + 1
    result = {
        "interval": interval,
        "changes": len(records),
        "writer_seconds": document["seconds"],
        "changes_per_s": len(records) / document["seconds"],
        "writer_busy_seconds": {role: document[f"{role}_busy_seconds"] for role in processes},
        "by_op": by_op,
        "median": statistics.median(lags) if lags else None,
        "p95": percentile(lags, 0.95) if lags else None,
        "max": max(lags) if lags else None,
        "unresolved": unresolved,
        "regressions": poller.regressions,
        "polls": poller.polls,
        "poll_ms": 1000 * poller.poll_seconds / max(1, poller.polls),
        "poll_every": poll_every,
        "follow_passes": info["passes"],
        "follow_cpu_share": info["cpu_seconds"] / info["wall"],
        "follow_rc": info["rc"],
        "follow_traceback": info["traceback"],
        "load": [load_before, load_after],
    }
    return result


# -- driver -----------------------------------------------------------------------------------


def bench_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"backend": backend, "load_start": load()}
    if backend == "postgresql":
        result["replica"] = args.pg_replica
    ws = Workspace(backend, args.pg_replica)
    data = frames(args.rows_per_symbol)
    try:
        if "capture" in args.parts:
            log(f"[{backend}] ingest with capture on vs off (load {load()})")
            result["capture"] = bench_capture(ws, data, args.repeat)
        settings = ws.settings(replica=True)
        with Stores(settings) as stores:
            if "import" in args.parts:
                log(f"[{backend}] a pass after a bulk import (load {load()})")
                result["import"] = bench_import(stores, data, args.changed)
            else:
                replicate_once(stores)
            if "idle" in args.parts:
                log(f"[{backend}] idle replicate --follow (load {load()})")
                result["idle"] = bench_idle(settings, stores, args.idle_seconds, ws.root)
            if "lag" in args.parts:
                result["lag"] = []
                for interval in args.intervals:
                    log(f"[{backend}] lag at {args.rate} changes/s, interval {interval} s")
                    lag = bench_lag(
                        settings,
                        stores,
                        interval,
                        args.rate,
                        args.lag_seconds,
                        args.delete_age,
                        args.library_share,
                        args.poll,
                        ws.root,
                    )
                    log(
                        f"  {lag['changes']} changes ({lag['changes_per_s']:.0f}/s): median "
                        f"{lag['median']:.3f} s, p95 {lag['p95']:.3f} s, max {lag['max']:.3f} s, "
                        f"{lag['unresolved']} unresolved (load {lag['load']})"
                    )
                    result["lag"].append(lag)
        ws.remove(settings)
    finally:
        ws.close()
    result["load_end"] = load()
    return result


# -- output -----------------------------------------------------------------------------------


def _figures(result: dict[str, Any]) -> dict[str, str]:
    """One backend's figures as label -> text (the rows of the summary table)."""
    rows: dict[str, str] = {}
    if "capture" in result:
        c = result["capture"]
        label = f"ingest {c['candles']:,} candles, best of {c['repeat']}"
        rows[f"{label}: capture on"] = f"{c['on_rows_per_s']:,.0f} rows/s"
        rows[f"{label}: capture off"] = f"{c['off_rows_per_s']:,.0f} rows/s"
        spread = ", ".join(f"{r:.2f}" for r in c["ratios"])
        rows["capture on / off (target >= 0.8)"] = f"{c['ratio_best']:.2f}x (runs: {spread})"
        rows["series_changes rows logged by that ingest"] = f"{c['series_log_rows']:,}"
    if "import" in result:
        i = result["import"]
        rows[f"bulk import of {i['candles']:,} candles"] = f"{i['import_seconds']:.2f} s"
        rows["pass after it: time / rows copied"] = (
            f"{i['pass_seconds']:.2f} s / {i['pass_rows']:,}"
        )
        rows["the next pass: time / rows copied (target 0)"] = (
            f"{1000 * i['next_pass_seconds']:.0f} ms / {i['next_pass_rows']}"
        )
        rows[f"re-import, {i['changed_candles']:,} candles changed"] = (
            f"{i['reimport_seconds']:.2f} s"
        )
        rows["  its pass: time / rows copied"] = (
            f"{i['reimport_pass_seconds']:.2f} s / {i['reimport_pass_rows']:,}"
        )
        rows["  changed candles wrong in the replica (target 0)"] = (
            f"{i['changed_wrong_in_replica']} (candles {i['source_candles']:,} / "
            f"{i['replica_candles']:,}; next pass {i['after_reimport_pass_rows']} rows)"
        )
    if "idle" in result:
        d = result["idle"]
        rows["idle `replicate --follow` (interval 5 s): CPU"] = (
            f"{100 * d['cpu_share']:.2f} % ({d['cpu_seconds']:.2f} s in {d['seconds']:.0f} s)"
        )
        rows["  its passes / rows copied (target 0)"] = f"{d['passes']} / {d['rows_copied']}"
        rows["  one pass with nothing new: time / rows (target 0)"] = (
            f"{1000 * d['in_process_pass_seconds']:.0f} ms / {d['in_process_pass_rows']}"
        )
    for lag in result.get("lag", []):
        label = f"lag at {lag['changes_per_s']:,.0f} changes/s, --interval {lag['interval']:g}"
        if lag["median"] is None:
            rows[label] = "no change seen"
            continue
        rows[f"{label}: median / p95 / max"] = (
            f"{lag['median']:.2f} / {lag['p95']:.2f} / {lag['max']:.2f} s"
        )
        rows[f"  ({lag['interval']:g} s) changes / unresolved / regressions"] = (
            f"{lag['changes']:,} / {lag['unresolved']} / {lag['regressions']}"
        )
        rows[f"  ({lag['interval']:g} s) the follow process: passes / CPU"] = (
            f"{lag['follow_passes']} / {100 * lag['follow_cpu_share']:.0f} %"
        )
    return rows


def summary(results: list[dict[str, Any]]) -> None:
    columns = [
        r["backend"] + (f" -> {r['replica']} replica" if "replica" in r else "") for r in results
    ]
    figures = [_figures(r) for r in results]
    labels = list(dict.fromkeys(label for f in figures for label in f))
    width = max(len(label) for label in labels)
    widths = [
        max(len(c), *(len(f.get(label, "")) for label in labels))
        for c, f in zip(columns, figures, strict=True)
    ]
    print(
        f"{'figure':<{width}}  "
        + "  ".join(f"{c:<{w}}" for c, w in zip(columns, widths, strict=True))
    )
    for label in labels:
        cells = [f.get(label, "-") for f in figures]
        print(
            f"{label:<{width}}  "
            + "  ".join(f"{c:<{w}}" for c, w in zip(cells, widths, strict=True))
        )
    loads = "; ".join(f"{r['backend']} {r['load_start']} -> {r['load_end']}" for r in results)
    print(f"load averages (1/5/15 min) at start -> end: {loads}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_writer"]:  # the load process of the lag measurement
        writer(argv[1], argv[2], argv[3], int(argv[4]), float(argv[5]), float(argv[6]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rows-per-symbol", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N ingest runs each")
    parser.add_argument("--changed", type=int, default=1_000, help="candles changed on re-import")
    parser.add_argument("--rate", type=int, default=2_000, help="changes per second")
    parser.add_argument("--lag-seconds", type=float, default=20.0)
    parser.add_argument(
        "--intervals",
        type=lambda value: [float(v) for v in value.split(",")],
        default=[0.1, 1.0],
        help="--follow intervals to measure the lag at (comma-separated seconds)",
    )
    parser.add_argument("--delete-age", type=float, default=5.0, help="delete rows this old (s)")
    parser.add_argument(
        "--library-share",
        type=float,
        default=0.05,
        help="share of the changes made through the library (a transaction each)",
    )
    parser.add_argument("--poll", type=float, default=0.02, help="replica polling period (s)")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument(
        "--pg-replica",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="replica of the PostgreSQL stores: another database, or rex.db",
    )
    parser.add_argument(
        "--parts",
        type=lambda value: value.split(","),
        default=["capture", "import", "idle", "lag"],
        help="comma-separated subset of capture,import,idle,lag",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = [bench_backend(backend, args) for backend in backends]
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    else:
        summary(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
