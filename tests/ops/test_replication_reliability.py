"""Reliability of change-log replication (issue 12), on SQLite and PostgreSQL.

* kill -9 of the replicator at random points while inserts, updates and deletes --
  through the library and through plain SQL -- land between and during its runs: after
  every kill the replica's cursors are whole JSON and the replica holds no row version
  the source never had; one clean pass afterwards makes every replicated table equal.
* SIGTERM of ``cryptotrading replicate --follow`` while it copies 50k candles and while
  it idles: exit 0, no traceback, the stop message; the next pass reaches equality.
* kill -9 of a writer inside its transaction, and at a random moment of a loop of
  committed transactions: the change logs hold exactly the committed changes.
* a pass with nothing new copies nothing and (SQLite) does not write the replica.

Seeds are printed (``-s``) and can be replayed with ``RELIABILITY_SEED``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, func, insert, select

from cryptotrading import agents
from cryptotrading.market.store import MarketStore
from cryptotrading.migrations import capture
from cryptotrading.models import TimeSeries, metadata
from cryptotrading.ops import changelog, replica_verify, replication
from cryptotrading.ops.replicated import LINEAGES, replicated_tables
from cryptotrading.security.users import UserService
from cryptotrading.services.cache import Cache
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from cryptotrading.trading import orders
from tests.helpers import (
    BINANCE_DIR,
    CLI_CODE,
    ROOT,
    SettingsFactory,
    invoke_json,
    load_rows,
    make_user,
    settings_env,
)
from tests.ops.helpers import candle_rows, insert_candles, insert_metrics, table_rows

#: These tests are about replication, not connections: any two agents may talk.
OPEN = agents.QueuePolicy(open_messaging=True)

TRIALS = 20
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
#: Tables the workloads below write (read after every step; the others at each check).
WRITTEN = (
    "time_series",
    "ingestion_batches",
    "a2a_agents",
    "a2a_messages",
    "cache_entries",
    "users",
    "trading_orders",
    "system_metrics",
)
#: No slow-query rows from the victims: the logs must hold only the writers' changes.
QUIET = {"CRYPTOTRADING_SLOW_QUERY_MS": "600000"}


def seed_for(test: str) -> int:
    seed = int(os.environ.get("RELIABILITY_SEED", time.time_ns() % 1_000_000))
    print(f"{test}: seed {seed} (replay with RELIABILITY_SEED={seed})")
    return seed


def environment(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings_env(settings), **QUIET}


# -- comparing stores ----------------------------------------------------------------


def tables() -> list[tuple[str, str]]:
    """(lineage, table) of every replicated table."""
    return [(lineage, t.name) for lineage in LINEAGES for t in replicated_tables(lineage)]


def source_engine(stores: Stores, lineage: str) -> Engine:
    return stores.engine(stores.primary_for(lineage))


def frozen(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row as a hashable value (JSON documents as sorted text)."""
    return tuple(
        json.dumps(v, sort_keys=True, default=str) if isinstance(v, dict | list) else v for v in row
    )


def assert_replica_equal(stores: Stores) -> None:
    """``replicate verify`` finds no difference, every replicated table of the replica
    equals its source row for row, and nothing is pending."""
    report = replica_verify.verify(stores)
    assert report.ok, [(t.table, t.missing, t.extra, t.changed) for t in report.differing]
    replica = stores.engine("replica")
    differing = [
        name
        for lineage, name in tables()
        if table_rows(source_engine(stores, lineage), name) != table_rows(replica, name)
    ]
    assert not differing, f"replica differs from the source in {differing}"
    assert all(lag.pending_changes == 0 for lag in replication.status(stores))


def log_seqs(stores: Stores) -> dict[str, int]:
    """The last ``seq`` of each change log of the sources."""
    found = {}
    for lineage in LINEAGES:
        with source_engine(stores, lineage).connect() as connection:
            for name in changelog.log_names(lineage):
                table = metadata.tables[name]
                found[name] = int(connection.execute(select(func.max(table.c.seq))).scalar() or 0)
    return found


def assert_cursors_whole(stores: Stores) -> None:
    """The replica's cursors are complete JSON positions of the current sources."""
    with stores.engine("replica").connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT lineage, source, position FROM replication_cursors"
        ).all()
    for lineage, source, position in rows:
        assert source.startswith(stores.primary_for(lineage).identity), source
        document = json.loads(position)
        assert set(document) == set(changelog.log_names(lineage)), document
        for value in document.values():
            assert isinstance(value["seq"], int) and value["seq"] >= 0, document
            assert ("prev" in value) == (stores.engine("replica").dialect.name == "postgresql")


# -- a workload through the library and through plain SQL ------------------------------


class Workload:
    """Random inserts, updates and deletes of both stores; remembers every row version
    the source held (``history``) so a replica row can be checked against it."""

    def __init__(self, stores: Stores, rng: random.Random, market_dir: Path) -> None:
        self.stores, self.rng = stores, rng
        self.app = stores.engine(stores.app)
        self.market = stores.engine(stores.market)
        self.candles = MarketStore(stores)
        self.cache = Cache(self.app)
        self.users = UserService(self.app, FAST_HASHER)
        self.rows = load_rows(market_dir / BINANCE_DIR / "ETH_USDT-1h.json")
        self.written = 0
        self.number = 0
        self.done: Counter[str] = Counter()
        # The replica's own rows from its migration (schema_versions) until the first
        # copy replaces them; then every version a source row had.
        replica = stores.engine("replica")
        self.history = {name: set(map(frozen, table_rows(replica, name))) for _, name in tables()}
        self.order_ids: list[str] = []
        agents.register_agent(self.app, "a1", "analyst")
        agents.register_agent(self.app, "a2", "trader")
        self.user = self.users.create("alice", "alice@example.com", "correct horse battery 9")
        self.user_id = self.scalar(self.app, "SELECT id FROM users WHERE username = 'alice'")
        self.lib_candles()
        self.record(everything=True)

    def scalar(self, engine: Engine, sql: str) -> Any:
        with engine.connect() as connection:
            return connection.exec_driver_sql(sql).scalar()

    def execute(self, engine: Engine, *statements: str) -> None:
        """Plain SQL in one transaction."""
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)

    def record(self, *, everything: bool = False) -> None:
        for lineage, name in tables():
            if everything or name in WRITTEN:
                engine = source_engine(self.stores, lineage)
                self.history[name].update(frozen(r) for r in table_rows(engine, name))

    def step(self) -> None:
        self.number += 1
        action = self.rng.choice(
            [
                self.lib_candles,
                self.lib_candles,
                self.lib_revise,
                self.sql_candles,
                self.sql_candles,
                self.lib_agents,
                self.lib_messages,
                self.lib_cache,
                self.lib_orders,
                self.sql_app,
                self.sql_app,
            ]
        )
        action()
        self.done[action.__name__] += 1
        self.record()

    # -- the market store --

    def lib_candles(self) -> None:
        """Import the next slice of real candles (new rows)."""
        chunk = self.rows[self.written : self.written + 120]
        self.written += len(chunk)
        self.candles.write_ohlcv(chunk, symbol="ETH/USDT", timeframe="1h", exchange="binance")

    def lib_revise(self) -> None:
        """Re-import an old slice with changed volumes (updates through the library)."""
        start = self.rng.randrange(0, max(1, self.written - 60))
        chunk = [[*r[:5], float(r[5]) + self.number] for r in self.rows[start : start + 60]]
        self.candles.write_ohlcv(chunk, symbol="ETH/USDT", timeframe="1h", exchange="binance")

    def sql_candles(self) -> None:
        """Plain SQL: update an old candle, delete a range, insert, move a candle to
        another series and month (another partition on PostgreSQL)."""
        ts = [int(r[0]) for r in self.rows[: self.written]]
        old, low, moved, target = (self.rng.choice(ts) for _ in range(4))
        high = low + self.rng.randint(0, 5) * 3_600_000
        where = "symbol = 'ETH/USDT' AND frequency = '1h' AND exchange = 'binance'"
        values = ", ".join(
            f"('SQL/USDT', '1h', {int(r[0])}, 'binance', {r[1]}, {r[2]}, {r[3]}, {r[4]}, 1, 0)"
            for r in self.rows[self.number * 3 : self.number * 3 + 3]
        )
        self.execute(
            self.market,
            f"UPDATE time_series SET close = low, volume = volume + 1 WHERE {where}"
            f" AND timestamp = {old}",
            f"DELETE FROM time_series WHERE {where} AND timestamp BETWEEN {low} AND {high}",
            "INSERT INTO time_series (symbol, frequency, timestamp, exchange, open, high, low,"
            f" close, volume, ingested_at) VALUES {values} ON CONFLICT DO NOTHING",
            f"UPDATE time_series SET symbol = 'MV{self.number}/USDT', timestamp = {target}"
            f" WHERE {where} AND timestamp = {moved}",
            "INSERT INTO ingestion_batches (job_id, batch, rows, changed, ingested_at)"
            f" VALUES ('sql', {self.number}, 3, 3, 0)",
            f"DELETE FROM ingestion_batches WHERE job_id = 'sql' AND batch = {self.number - 3}",
        )

    # -- the application store --

    def lib_agents(self) -> None:
        name = f"x{self.number}"
        agents.register_agent(self.app, name, "analyst", capabilities=["trade"])
        agents.register_agent(self.app, "a2", f"t{self.number}")  # an update
        if self.rng.random() < 0.5:
            agents.deactivate_agent(self.app, name)  # a soft delete

    def lib_messages(self) -> None:
        for n in range(3):
            agents.send_message(self.app, "a1", "a2", {"n": self.number, "i": n}, policy=OPEN)
        for message in agents.claim_messages(self.app, "a2", limit=2):
            agents.acknowledge(self.app, message.message_id)

    def lib_cache(self) -> None:
        key = f"k{self.rng.randrange(4)}"
        if self.rng.random() < 0.3:
            self.cache.delete(key)
        else:
            self.cache.set(key, {"n": self.number, "nested": [1.5, None, "x"]})

    def lib_orders(self) -> None:
        submitted = orders.submit_order(
            self.app,
            user_id=self.user_id,
            symbol="ETH/USDT",
            side=self.rng.choice(["buy", "sell"]),
            order_type="limit",
            amount="0.25",
            price=f"{1000 + self.number}.5",
        )
        self.order_ids.append(submitted.order.order_id)
        if len(self.order_ids) > 2:
            orders.cancel_order(self.app, self.order_ids.pop(0))

    def sql_app(self) -> None:
        """Plain SQL: the issue's case (an old agent's type changed, a message deleted),
        an agent deleted with its messages (cascade), metrics inserted, a user updated."""
        make_user(self.app, f"u{self.number}")
        statements = [
            f"UPDATE a2a_agents SET agent_type = 'risk{self.number}'"
            " WHERE id = (SELECT min(id) FROM a2a_agents)",
            "DELETE FROM a2a_messages WHERE id = (SELECT min(id) FROM a2a_messages)",
            f"UPDATE users SET email = 'u{self.number}@new.example' WHERE username = 'alice'",
            "INSERT INTO system_metrics (metric_name, value, component, recorded_at)"
            f" VALUES ('sql.{self.number}', 0.1, 'test', '2021-01-01 00:00:00')",
            "DELETE FROM system_metrics WHERE id = (SELECT min(id) FROM system_metrics)",
        ]
        victim = self.scalar(
            self.app,
            "SELECT max(agent_id) FROM a2a_agents"
            " WHERE substr(agent_id, 1, 1) = 'x' AND status = 'active'",
        )
        if victim is not None:
            agents.send_message(self.app, victim, "a1", {"bye": self.number}, policy=OPEN)
            statements.append(f"DELETE FROM a2a_agents WHERE agent_id = '{victim}'")
        self.execute(self.app, *statements)

    # -- checks --

    def assert_replica_within_history(self, context: Any) -> None:
        """Every replica row is a version some source row had at some point."""
        self.record(everything=True)
        replica = self.stores.engine("replica")
        for _lineage, name in tables():
            rows = table_rows(replica, name)
            assert len(rows) == len(set(map(frozen, rows))), (context, name)
            strange = [r for r in rows if frozen(r) not in self.history[name]]
            assert not strange, (context, name, strange[:3])


def start_replicator(settings: Settings, batch: int) -> subprocess.Popen[str]:
    victim = subprocess.Popen(
        [sys.executable, "-m", "tests.ops.replicator", str(batch)],
        cwd=ROOT,
        env=environment(settings),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert victim.stdout is not None
    assert victim.stdout.readline().strip() == "started"
    return victim


@pytest.mark.slow
def test_kill_9_of_the_replicator_with_inserts_updates_deletes_interleaved(
    make_settings: SettingsFactory, market_data_dir: Path
) -> None:
    seed = seed_for("kill -9 of the replicator")
    rng = random.Random(seed)
    settings = make_settings()
    killed_mid_run = killed_after_progress = 0
    window = 1.0  # seconds; follows the duration of the last uninterrupted pass
    with Stores(settings) as stores:
        work = Workload(stores, rng, market_data_dir)
        for trial in range(TRIALS):
            for _ in range(rng.randint(1, 3)):  # between runs
                work.step()
            cursors = cursor_stamps(stores)
            victim = start_replicator(settings, batch=rng.choice([3, 10, 40]))
            try:
                deadline = time.monotonic() + rng.uniform(0.0, window)
                for _ in range(rng.randint(0, 2)):  # during the run
                    if time.monotonic() < deadline:
                        work.step()
                time.sleep(max(0.0, deadline - time.monotonic()))
            finally:
                victim.kill()
                rest, _ = victim.communicate()
            if "done" in rest:
                window = max(0.2, float(rest.split()[-1]))
            else:
                killed_mid_run += 1
                killed_after_progress += cursor_stamps(stores) != cursors
            assert_cursors_whole(stores)
            work.assert_replica_within_history((seed, trial))
        print(
            f"seed {seed}: {killed_mid_run}/{TRIALS} kills mid-run, {killed_after_progress} of"
            f" them after the pass had committed some progress; steps {dict(work.done)}"
        )
        assert killed_mid_run >= TRIALS // 2, f"most kills should hit a running pass ({seed})"
        assert {"sql_candles", "sql_app", "lib_revise"} <= set(work.done), work.done
        replication.replicate_once(stores)
        after_one = replica_verify.verify(stores)
        if not after_one.ok:  # tell a stale replica from a wrong one
            replication.replicate_once(stores)
            healed = replica_verify.verify(stores).ok
            differing = [(t.table, t.missing, t.extra, t.changed) for t in after_one.differing]
            pytest.fail(
                f"seed {seed}: one clean pass after the kills left {differing};"
                f" a second pass {'made it equal' if healed else 'did not repair it'}"
            )
        assert_replica_equal(stores)
        report = invoke_json(settings, "replicate", "verify", "--json")
        assert report["ok"] is True and len(report["tables"]) == len(tables())
        with stores.engine("replica").connect() as connection:
            assert capture.installed(connection) == {}  # a replica logs nothing itself


# -- SIGTERM of `replicate --follow` ---------------------------------------------------


def start_follow(settings: Settings, batch: int = 1000) -> subprocess.Popen[str]:
    command = ["replicate", "--follow", "--interval", "0.2", "--batch-size", str(batch)]
    return subprocess.Popen(
        [sys.executable, "-c", CLI_CODE, *command],
        cwd=ROOT,
        env={**environment(settings), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def replica_candles(stores: Stores) -> int:
    with stores.engine("replica").connect() as connection:
        return int(connection.exec_driver_sql("SELECT count(*) FROM time_series").scalar() or 0)


def write_real_5m(stores: Stores, market_dir: Path, count: int) -> None:
    rows = load_rows(market_dir / BINANCE_DIR / "BTC_USDT-5m.json")[:count]
    assert len(rows) == count
    MarketStore(stores).write_ohlcv(rows, symbol="BTC/USDT", timeframe="5m", exchange="binance")


def stop_follow(follower: subprocess.Popen[str]) -> tuple[str, str, float]:
    """SIGTERM, then (stdout, stderr, seconds until it exited)."""
    sent = time.monotonic()
    follower.send_signal(signal.SIGTERM)
    out, err = follower.communicate(timeout=120)
    return out, err, time.monotonic() - sent


def assert_clean_stop(follower: subprocess.Popen[str], out: str, err: str) -> None:
    assert follower.returncode == 0, (follower.returncode, out, err)
    assert "Traceback" not in out + err, err
    assert "stopped; the next run resumes from the replica's position" in out, out


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["first copy", "incremental"])
def test_sigterm_of_follow_while_copying_50k_candles(
    make_settings: SettingsFactory, market_data_dir: Path, phase: str
) -> None:
    settings = make_settings()
    total = 50_000
    with Stores(settings) as stores:
        make_user(stores.engine("app"), "alice")
        if phase == "incremental":
            replication.replicate_once(stores)
        write_real_5m(stores, market_data_dir, total)
        follower = start_follow(settings, batch=500)
        copied = 0
        deadline = time.monotonic() + 60
        while copied == 0 and time.monotonic() < deadline and follower.poll() is None:
            time.sleep(0.02)
            copied = replica_candles(stores)
        out, err, seconds = stop_follow(follower)
        print(f"{phase}: SIGTERM after {copied} candles; exited {seconds:.2f} s later")
        assert 0 < copied < total, f"the signal should arrive mid-copy ({copied})"
        assert_clean_stop(follower, out, err)
        runs = replication.replicate_once(stores)
        assert sum(r.rows for r in runs) <= total + 1
        assert replica_candles(stores) == total
        assert_replica_equal(stores)


@pytest.mark.slow
def test_sigterm_of_an_idle_follow(make_settings: SettingsFactory, market_data_dir: Path) -> None:
    settings = make_settings()
    with Stores(settings) as stores:
        write_real_5m(stores, market_data_dir, 2_000)
        make_user(stores.engine("app"), "alice")
        replication.replicate_once(stores)
        replication.replicate_once(stores)  # PostgreSQL: close the first window
        follower = start_follow(settings)
        assert follower.stdout is not None
        seen = []
        while len(seen) < 4:  # four passes
            line = follower.stdout.readline()
            assert line, "the follower ended on its own"
            if " rows copied to the replica" in line:
                seen.append(line)
        out, err, seconds = stop_follow(follower)
        assert_clean_stop(follower, out, err)
        assert seconds < 5, seconds
        passes = [line for line in seen + out.splitlines() if " rows copied to the replica" in line]
        assert all(line.startswith("0 rows copied") for line in passes), passes
        # The next pass picks up what changed after the stop.
        insert_metrics(stores.engine("app"), 3, "after.stop")
        with stores.engine("market").begin() as connection:
            connection.exec_driver_sql(  # the first candle, by plain SQL
                "DELETE FROM time_series"
                " WHERE timestamp < 1 + (SELECT min(timestamp) FROM time_series)"
            )
        replication.replicate_once(stores)
        assert_replica_equal(stores)


# -- kill -9 of a writer ---------------------------------------------------------------


class WriterRun:
    """A ``tests.ops.mixed_writer`` process; a thread drains what it reports (a full
    pipe would stall it and bias where the kill lands)."""

    def __init__(self, settings: Settings, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.ops.mixed_writer", *args],
            cwd=ROOT,
            env=environment(settings),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        self.begun: dict[int, dict[str, Any]] = {}
        self.committed: dict[int, dict[str, Any]] = {}

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def read_until(self, marker: str, timeout: float = 60) -> None:
        """Wait for a line that is *marker* or starts with it and a space."""
        deadline = time.monotonic() + timeout
        while not any(line.split(" ", 1)[0].strip() == marker for line in self.lines):
            assert self.process.poll() is None, f"the writer ended before {marker!r}"
            assert time.monotonic() < deadline, f"no {marker!r} from the writer"
            time.sleep(0.01)

    def kill(self) -> None:
        """kill -9, then parse what it reported (a last line cut short by the kill
        leaves its unit in flight)."""
        self.process.kill()
        self.process.wait()
        self.reader.join(timeout=10)
        for line in self.lines:
            try:
                word, number, document = line.split(" ", 2)
                target = self.begun if word == "begin" else self.committed
                target[int(number)] = json.loads(document)
            except ValueError:
                pass


def prepare_writer_stores(stores: Stores) -> None:
    """What ``tests.ops.mixed_writer`` expects: agents, a user, the first candles."""
    from tests.ops.mixed_writer import FREQUENCY, PREPARED, SYMBOL, real_candles

    app = stores.engine("app")
    agents.register_agent(app, "a1", "analyst")
    agents.register_agent(app, "a2", "trader")
    agents.send_message(app, "a1", "a2", {"first": True}, policy=OPEN)
    Cache(app).set("first", {"v": 1})
    make_user(app, "alice")
    MarketStore(stores).write_ohlcv(
        real_candles()[:PREPARED], symbol=SYMBOL, timeframe=FREQUENCY, exchange="binance"
    )
    replication.replicate_once(stores)
    assert_replica_equal(stores)


def unit_committed(stores: Stores, unit: dict[str, Any]) -> bool:
    store, sql = unit["probe"]
    with stores.engine(store).connect() as connection:
        return connection.exec_driver_sql(sql).first() is not None


def resolve(stores: Stores, unit: dict[str, Any]) -> dict[str, Any]:
    """The changes of a unit that committed without reporting it."""
    rows = list(unit.get("rows", []))
    for table, op, store, sql in unit.get("find", []):
        with stores.engine(store).connect() as connection:
            rows += [[table, op, list(key)] for key in connection.exec_driver_sql(sql)]
    return {"rows": rows, "candles": unit.get("candles", [])}


def logged_since(
    stores: Stores, since: dict[str, int]
) -> tuple[set[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(table, op, key) of the row logs and the ranges of ``series_changes`` after *since*."""
    rows: set[tuple[Any, ...]] = set()
    ranges: list[tuple[Any, ...]] = []
    for lineage in LINEAGES:
        with source_engine(stores, lineage).connect() as connection:
            for name in changelog.log_names(lineage):
                table = metadata.tables[name]
                query = select(table).where(table.c.seq > since[name]).order_by(table.c.seq)
                for entry in connection.execute(query).mappings():
                    if name == capture.SERIES_LOG:
                        series = (entry["symbol"], entry["frequency"], entry["exchange"])
                        ranges.append((*series, entry["first_ts"], entry["last_ts"]))
                    else:
                        key = tuple(json.loads(entry["row_key"]))
                        rows.add((entry["table_name"], entry["op"], key))
    return rows, ranges


def assert_log_holds_exactly(
    stores: Stores, since: dict[str, int], changes: list[dict[str, Any]]
) -> None:
    """The change logs after *since* hold exactly the committed *changes*: every
    committed row change is logged (table, operation, key) and nothing else is; every
    committed candle lies in a logged range and every logged range begins and ends on
    a committed candle."""
    rows, ranges = logged_since(stores, since)
    expected = {(t, op, tuple(key)) for change in changes for t, op, key in change["rows"]}
    assert rows == expected, (
        f"logged, not committed: {sorted(rows - expected)[:5]}; "
        f"committed, not logged: {sorted(expected - rows)[:5]}"
    )
    candles: dict[tuple[Any, ...], set[int]] = {}
    for change in changes:
        for symbol, frequency, exchange, ts in change["candles"]:
            candles.setdefault((symbol, frequency, exchange), set()).add(int(ts))
    for symbol, frequency, exchange, first, last in ranges:
        known = candles.get((symbol, frequency, exchange), set())
        assert first in known and last in known, ("logged, not committed", symbol, first, last)
    for series, stamps in candles.items():
        covering = [(f, la) for (*s, f, la) in ranges if tuple(s) == series]
        missing = [ts for ts in stamps if not any(f <= ts <= la for f, la in covering)]
        assert not missing, ("committed, not logged", series, missing[:5])


def assert_series_triggers(stores: Stores) -> None:
    with stores.engine("market").connect() as connection:
        expected = {"i", "u", "d"} | ({"t"} if connection.dialect.name == "postgresql" else set())
        assert capture.installed(connection).get("time_series") == expected


@pytest.mark.slow
def test_writer_killed_inside_its_transaction_leaves_no_trace_in_the_log(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    with Stores(settings) as stores:
        prepare_writer_stores(stores)
        since = log_seqs(stores)
        before = {name: table_rows(stores.engine("replica"), name) for _, name in tables()}
        writer = WriterRun(settings, "inside")
        writer.read_until("inside")
        writer.kill()
        assert sorted(writer.committed) == [0, 1, 2, 3], writer.committed
        assert_log_holds_exactly(stores, since, list(writer.committed.values()))
        assert_series_triggers(stores)  # the batch writer's trigger swap rolled back
        with stores.engine("app").connect() as connection:
            agent_ids = connection.exec_driver_sql("SELECT agent_id FROM a2a_agents").scalars()
            assert "inside" not in set(agent_ids)
        replication.replicate_once(stores)
        assert_replica_equal(stores)
        after = {name: table_rows(stores.engine("replica"), name) for _, name in tables()}
        assert after["time_series"] != before["time_series"]  # the committed units arrived


@pytest.mark.slow
def test_writer_killed_at_random_moments_logs_exactly_its_commits(
    make_settings: SettingsFactory,
) -> None:
    seed = seed_for("kill -9 of a committing writer")
    rng = random.Random(seed)
    settings = make_settings()
    with Stores(settings) as stores:
        prepare_writer_stores(stores)
        in_flight_committed = 0
        for round_ in range(3):
            since = log_seqs(stores)
            writer = WriterRun(settings, "loop", str(seed + round_), str(100_000 * round_))
            writer.read_until("commit")
            time.sleep(rng.uniform(0.5, 2.5))
            writer.kill()
            changes = [writer.committed[n] for n in sorted(writer.committed)]
            flying = [n for n in writer.begun if n not in writer.committed]
            assert len(flying) <= 1 and len(writer.committed) >= 3, (seed, writer.begun)
            for number in flying:
                if unit_committed(stores, writer.begun[number]):
                    in_flight_committed += 1
                    changes.append(resolve(stores, writer.begun[number]))
            assert_log_holds_exactly(stores, since, changes)
            assert_series_triggers(stores)
            replication.replicate_once(stores)
            assert_replica_equal(stores)
        print(f"seed {seed}: {in_flight_committed} kills after a commit it did not report")


@pytest.mark.slow
def test_a_transaction_open_across_a_pass_reaches_the_replica_after_its_commit(
    make_settings: SettingsFactory, market_data_dir: Path
) -> None:
    settings = make_settings(sqlite_busy_timeout_ms=5_000)  # a pass must not wait for it
    with Stores(settings) as stores:
        prepare_writer_stores(stores)
        writer = WriterRun(settings, "hold")
        writer.read_until("inside")
        # Later transactions commit while the writer's stays open (on PostgreSQL they
        # took their log sequence numbers after it) ...
        app = stores.engine("app")
        agents.register_agent(app, "later", "analyst")
        agents.send_message(app, "later", "a2", {"n": 2}, policy=OPEN)
        if stores.market.backend == "postgresql":  # SQLite: the writer holds the lock
            rows = load_rows(market_data_dir / BINANCE_DIR / "ETH_USDT-1h.json")[:200]
            MarketStore(stores).write_ohlcv(
                rows, symbol="ETH/USDT", timeframe="1h", exchange="binance"
            )
        replication.replicate_once(stores)
        replication.replicate_once(stores)
        # ... then it commits: the next pass still brings its changes.
        assert writer.process.stdin is not None
        writer.process.stdin.write("commit\n")
        writer.process.stdin.flush()
        writer.read_until("committed")
        writer.process.wait(timeout=60)
        with stores.engine("market").connect() as connection:
            assert connection.exec_driver_sql(
                "SELECT 1 FROM time_series WHERE symbol = 'INSIDE/USDT'"
            ).first()
        replication.replicate_once(stores)
        assert_replica_equal(stores)


@pytest.mark.parametrize("phase", ["first copy", "incremental"])
def test_a_stop_ends_a_pass_within_a_batch_of_candles(
    stores: Stores, market_data_dir: Path, phase: str
) -> None:
    """A stop (SIGTERM or Ctrl-C of ``--follow``) is honoured between two replica
    transactions, also inside one long range of candles: otherwise the 50k-candle
    import above is copied to its end first, and a 3M-candle one outlasts systemd's
    90 s stop timeout."""
    if phase == "incremental":
        replication.replicate_once(stores)
    write_real_5m(stores, market_data_dir, 5_000)
    stop = replication.Stop()

    def progress(table: str, _rows: int) -> None:
        if table == "market.time_series":
            stop.set()

    replication.replicate_once(stores, batch_size=500, stop=stop, progress=progress)
    assert replica_candles(stores) <= 1_000
    replication.replicate_once(stores)
    assert_replica_equal(stores)


# -- an idle pass ------------------------------------------------------------------------


def replica_files(settings: Settings) -> Iterator[tuple[str, int, int]]:
    for path in sorted(Path(settings.data_dir).glob("rex.db*")):
        stat = path.stat()
        yield path.name, stat.st_size, stat.st_mtime_ns


def cursor_stamps(stores: Stores) -> list[tuple[Any, ...]]:
    with stores.engine("replica").connect() as connection:
        return [
            tuple(r)
            for r in connection.exec_driver_sql(
                "SELECT lineage, position, updated_at FROM replication_cursors ORDER BY lineage"
            )
        ]


def test_an_idle_pass_copies_nothing_and_leaves_a_sqlite_replica_untouched(
    make_settings: SettingsFactory, market_data_dir: Path
) -> None:
    settings = make_settings()
    with Stores(settings) as stores:
        write_real_5m(stores, market_data_dir, 3_000)
        agents.register_agent(stores.engine("app"), "a1", "analyst")
        insert_metrics(stores.engine("app"), 5)
        replication.replicate_once(stores)
        replication.replicate_once(stores)  # PostgreSQL: close the first window
        files = list(replica_files(settings))
        stamps = cursor_stamps(stores)
        before = {name: table_rows(stores.engine("replica"), name) for _, name in tables()}
        time.sleep(0.05)  # a write now would show in the mtime
        for _ in range(3):
            runs = replication.replicate_once(stores)
            assert sum(r.rows for r in runs) == 0, [r for r in runs if r.rows]
        after = {name: table_rows(stores.engine("replica"), name) for _, name in tables()}
        assert after == before
        if stores.engine("replica").dialect.name == "sqlite":
            assert list(replica_files(settings)) == files
            assert cursor_stamps(stores) == stamps
        assert_replica_equal(stores)


# -- bugs found --------------------------------------------------------------------------


def test_unique_values_moved_between_rows_replicate(stores: Stores) -> None:
    """Two users swap e-mail addresses (three statements in one transaction, as the
    source's unique index requires). The replica receives both rows in one page and
    upserts them one by one: whichever comes first collides with the other's old
    value, on any backend and in any row order. (A single move -- user 2 gives an
    address up, user 1 takes it -- collides the same way whenever the row taking it
    comes first: on SQLite, by key order.)"""
    app = stores.engine("app")
    make_user(app, "first")
    make_user(app, "second")
    replication.replicate_once(stores)
    with app.begin() as connection:
        for statement in (
            "UPDATE users SET email = 'swap@example.com' WHERE username = 'first'",
            "UPDATE users SET email = 'first@example.com' WHERE username = 'second'",
            "UPDATE users SET email = 'second@example.com' WHERE username = 'first'",
        ):
            connection.exec_driver_sql(statement)
    replication.replicate_once(stores)
    assert_replica_equal(stores)


def test_a_pass_does_not_wait_for_a_writer_of_the_sources(make_settings: SettingsFactory) -> None:
    """A pass only reads the sources (and registers its position in the application
    store): a transaction open in the market store must not hold it up."""
    settings = make_settings(sqlite_busy_timeout_ms=1000)
    with Stores(settings) as stores:
        market = stores.engine("market")
        insert_candles(market, 0, 10)
        replication.replicate_once(stores)
        with market.connect() as connection, connection.begin():
            connection.execute(insert(TimeSeries), candle_rows(10, 5))
            runs = replication.replicate_once(stores)  # the writer has not committed
            assert sum(r.rows for r in runs) == 0
        replication.replicate_once(stores)
        assert_replica_equal(stores)


def test_a_table_emptied_by_plain_sql_is_emptied_in_the_replica(stores: Stores) -> None:
    """``TRUNCATE`` on PostgreSQL (``DELETE`` without a condition on SQLite, which has
    no TRUNCATE and would use its truncate optimisation but for the triggers) empties
    the table in the replica too: a statement no writer is barred from."""
    app, market = stores.engine("app"), stores.engine("market")
    insert_metrics(app, 5)
    insert_candles(market, 0, 20)
    replication.replicate_once(stores)
    postgres = stores.engine("app").dialect.name == "postgresql"
    for engine, table in ((app, "system_metrics"), (market, "time_series")):
        with engine.begin() as connection:
            connection.exec_driver_sql(f"TRUNCATE {table}" if postgres else f"DELETE FROM {table}")
    replication.replicate_once(stores)
    assert_replica_equal(stores)


def test_a_pass_after_an_interrupted_one_applies_everything_logged(stores: Stores) -> None:
    """A pass that ends early (stopped, or killed) leaves its position in the middle of
    the changes it had seen. The next pass must apply those AND every change logged
    since -- ``replicate`` once, then ``verify`` equal -- not only finish the old
    window (PostgreSQL positions are snapshot windows)."""
    market = stores.engine("market")
    replication.replicate_once(stores)
    insert_candles(market, 0, 3)  # one logged range per statement (per candle on SQLite)
    insert_candles(market, 3, 3)
    stop = replication.Stop()

    def progress(table: str, _rows: int) -> None:
        if table == "market.time_series":
            stop.set()

    replication.replicate_once(stores, batch_size=1, stop=stop, progress=progress)
    assert 0 < replica_candles(stores) < 6  # interrupted between two pages
    insert_candles(market, 6, 3)  # logged after the interrupted pass
    replication.replicate_once(stores)
    assert replica_candles(stores) == 9
    assert_replica_equal(stores)
