"""Writes the application and market stores in units of changes -- through the library
and through plain SQL -- and reports each unit (a victim for kill -9 in the change-log
tests). The stores come from CRYPTOTRADING_*; the test prepared agents ``a1``/``a2``,
user ``alice`` and the first BTC/USDT candles.

Usage: python -m tests.ops.mixed_writer MODE [SEED [FIRST]]

* ``loop SEED FIRST``: commit units of changes until killed, numbered from FIRST (the
  number names the unit's new rows: runs on the same stores take distinct ranges).
* ``inside``: commit two units, then open a transaction on each store, change rows
  through the library and plain SQL, print ``inside`` and sleep, never committing.
* ``hold``: like ``inside``, but commit when a line arrives on stdin, then print
  ``committed`` (on SQLite only the market store's transaction is held).

Before a unit it prints ``begin K {unit}``, after its commit ``commit K {changes}``:

* unit: ``probe`` (store, SQL): a row comes back iff the unit committed; ``rows``:
  ``[table, op, key]`` changes whose key is known before; ``find``: ``[table, op,
  store, SQL]`` inserts whose keys the SQL selects after the commit; ``candles``:
  ``[symbol, frequency, exchange, timestamp]`` candles changed.
* changes: ``rows`` with every ``find`` resolved, and ``candles``.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text

from cryptotrading import agents
from cryptotrading.db import unit_of_work
from cryptotrading.market import postgres_io, sqlite_io
from cryptotrading.market.backend import BatchMark
from cryptotrading.market.candles import to_candles
from cryptotrading.market.store import MarketStore
from cryptotrading.models.agents import A2AAgent
from cryptotrading.services.cache import Cache
from cryptotrading.settings import load_settings
from cryptotrading.stores import Stores
from cryptotrading.trading.orders import build_request, create_order
from tests.helpers import BINANCE_DIR, SHARED_DIR, load_rows

#: These tests are about replication, not connections: any two agents may talk.
OPEN = agents.QueuePolicy(open_messaging=True)

SYMBOL, FREQUENCY, EXCHANGE = "BTC/USDT", "1h", "binance"
#: Candles the test wrote before starting the writer (rows 0 .. PREPARED-1).
PREPARED = 300
SLICE = 40
Unit = dict[str, Any]


def real_candles() -> list[list[Any]]:
    """The real BTC/USDT 1h candles the tests and the writer share."""
    return load_rows(SHARED_DIR / "data" / "market" / BINANCE_DIR / "BTC_USDT-1h.json")


def candle_sql(symbol: str, row: list[Any]) -> str:
    ts, o, h, low, c, v = row
    return (
        "INSERT INTO time_series (symbol, frequency, timestamp, exchange, open, high, low,"
        f" close, volume, ingested_at) VALUES ('{symbol}', '{FREQUENCY}', {int(ts)},"
        f" '{EXCHANGE}', {o!r}, {h!r}, {low!r}, {c!r}, {v!r}, 0)"
    )


def key_of(row: list[Any], symbol: str = SYMBOL) -> list[Any]:
    return [symbol, FREQUENCY, EXCHANGE, int(row[0])]


class Writer:
    def __init__(self, stores: Stores, seed: int, first: int = 0) -> None:
        self.rng = random.Random(seed)
        self.app: Engine = stores.engine(stores.app)
        self.market: Engine = stores.engine(stores.market)
        self.candles = MarketStore(stores)
        self.cache = Cache(self.app)
        self.rows = real_candles()
        # Candles 0 .. written-1 were committed at least once (by the test, or a writer
        # before this one): new ones follow them.
        last = self.scalar(
            self.market,
            f"SELECT max(timestamp) FROM time_series WHERE symbol = '{SYMBOL}'"
            f" AND frequency = '{FREQUENCY}' AND exchange = '{EXCHANGE}'",
        )
        stamps = [int(row[0]) for row in self.rows]
        self.written = max(PREPARED, stamps.index(int(last)) + 1 if last is not None else 0)
        self.number = first

    # -- helpers --

    def scalar(self, engine: Engine, sql: str) -> Any:
        with engine.connect() as connection:
            return connection.exec_driver_sql(sql).scalar()

    def keys(self, engine: Engine, sql: str) -> list[list[Any]]:
        with engine.connect() as connection:
            return [list(row) for row in connection.exec_driver_sql(sql)]

    def run(self, unit: Unit, body: Callable[[], object]) -> None:
        """Report *unit*, run its *body* (its one transaction), report it committed."""
        print(f"begin {self.number} {json.dumps(unit)}", flush=True)
        body()
        rows = list(unit.get("rows", []))
        for table, op, store, sql in unit.get("find", []):
            engine = self.app if store == "app" else self.market
            rows += [[table, op, key] for key in self.keys(engine, sql)]
        changes = {"rows": rows, "candles": unit.get("candles", [])}
        print(f"commit {self.number} {json.dumps(changes)}", flush=True)
        self.number += 1

    # -- units --

    def agent(self) -> None:
        name = f"w{self.number}"
        find = f"SELECT id FROM a2a_agents WHERE agent_id = '{name}'"
        unit = {"probe": ["app", find], "find": [["a2a_agents", "I", "app", find]]}
        self.run(unit, lambda: agents.register_agent(self.app, name, "analyst"))

    def retype(self) -> None:
        """The library updates the oldest agent (an old row)."""
        kind = f"t{self.number}"
        agent_id = self.scalar(self.app, "SELECT id FROM a2a_agents WHERE agent_id = 'a1'")
        probe = f"SELECT 1 FROM a2a_agents WHERE agent_id = 'a1' AND agent_type = '{kind}'"
        unit = {"probe": ["app", probe], "rows": [["a2a_agents", "U", [agent_id]]]}
        self.run(unit, lambda: agents.register_agent(self.app, "a1", kind))

    def message(self) -> None:
        tag = f"c{self.number}"
        find = f"SELECT id FROM a2a_messages WHERE correlation_id = '{tag}'"
        unit = {"probe": ["app", find], "find": [["a2a_messages", "I", "app", find]]}
        self.run(
            unit,
            lambda: agents.send_message(
                self.app, "a1", "a2", {"n": 1}, correlation_id=tag, policy=OPEN
            ),
        )

    def cache_set(self) -> None:
        key = f"key{self.number}"
        find = f"SELECT id FROM cache_entries WHERE cache_key = '{key}'"
        unit = {"probe": ["app", find], "find": [["cache_entries", "I", "app", find]]}
        self.run(unit, lambda: self.cache.set(key, {"n": self.number}))

    def sql_app(self) -> None:
        """Plain SQL in one transaction: an update of an old row, deletes, inserts."""
        name = f"m{self.number}"
        find = f"SELECT id FROM system_metrics WHERE metric_name = '{name}'"
        oldest = self.scalar(self.app, "SELECT min(id) FROM a2a_agents")
        message = self.scalar(self.app, "SELECT min(id) FROM a2a_messages")
        entry = self.scalar(self.app, "SELECT max(id) FROM cache_entries")
        statements = [
            f"UPDATE a2a_agents SET agent_type = 'sql{self.number}' WHERE id = {oldest}",
            "INSERT INTO system_metrics (metric_name, value, component, recorded_at)"
            f" VALUES ('{name}', 1.5, 'writer', '2021-01-01 00:00:00')",
            "INSERT INTO system_metrics (metric_name, value, component, recorded_at)"
            f" VALUES ('{name}', 2.5, 'writer', '2021-01-02 00:00:00')",
        ]
        rows: list[list[Any]] = [["a2a_agents", "U", [oldest]]]
        if message is not None:
            statements.append(f"DELETE FROM a2a_messages WHERE id = {message}")
            rows.append(["a2a_messages", "D", [message]])
        if entry is not None:
            statements.append(f"DELETE FROM cache_entries WHERE id = {entry}")
            rows.append(["cache_entries", "D", [entry]])
        unit = {
            "probe": ["app", find],
            "rows": rows,
            "find": [["system_metrics", "I", "app", find]],
        }

        def body() -> None:
            with self.app.begin() as connection:
                for statement in statements:
                    connection.exec_driver_sql(statement)

        self.run(unit, body)

    def _batch_unit(self, job: str, candles: list[list[Any]], extra: Unit | None = None) -> Unit:
        probe = f"SELECT 1 FROM ingestion_batches WHERE job_id = '{job}' AND batch = {self.number}"
        unit: Unit = {
            "probe": ["market", probe],
            "rows": [["ingestion_batches", "I", [job, self.number]]],
            "candles": candles,
        }
        for name, values in (extra or {}).items():
            unit[name] = unit.get(name, []) + values
        return unit

    def new_candles(self) -> None:
        """The library imports the next slice of real candles."""
        chunk = self.rows[self.written : self.written + SLICE]
        if not chunk:  # every real candle is stored: an empty write records no batch
            self.revise_candles()
            return
        self.written += len(chunk)
        unit = self._batch_unit("writer", [key_of(row) for row in chunk])
        self.run(unit, lambda: self._write(chunk))

    def revise_candles(self) -> None:
        """The library re-imports an old slice with every volume changed (updates)."""
        start = self.rng.randrange(0, self.written - SLICE)
        chunk = [[*row[:5], float(row[5]) + 1000 + self.number] for row in self.rows]
        chunk = chunk[start : start + SLICE]
        unit = self._batch_unit("writer", [key_of(row) for row in chunk])
        self.run(unit, lambda: self._write(chunk))

    def _write(self, chunk: list[list[Any]]) -> None:
        self.candles.write_ohlcv(
            chunk,
            symbol=SYMBOL,
            timeframe=FREQUENCY,
            exchange=EXCHANGE,
            batch=BatchMark("writer", self.number),
        )

    def sql_candles(self) -> None:
        """Plain SQL on time_series: update two old candles, delete one, insert one."""
        picked = self.rng.sample(range(self.written), 3)
        updated = [int(self.rows[n][0]) for n in picked[:2]]
        deleted = int(self.rows[picked[2]][0])
        extra = self.rows[self.number % len(self.rows)]
        symbol = f"SQL{self.number}/USDT"
        statements = [
            "UPDATE time_series SET volume = volume + 1 WHERE symbol = 'BTC/USDT'"
            f" AND frequency = '1h' AND exchange = 'binance' AND timestamp IN {tuple(updated)}",
            "DELETE FROM time_series WHERE symbol = 'BTC/USDT' AND frequency = '1h'"
            f" AND exchange = 'binance' AND timestamp = {deleted}",
            candle_sql(symbol, extra),
            "INSERT INTO ingestion_batches (job_id, batch, rows, changed, ingested_at)"
            f" VALUES ('sql', {self.number}, 3, 3, 0)",
        ]
        present = self.scalar(
            self.market,
            "SELECT count(*) FROM time_series WHERE symbol = 'BTC/USDT' AND frequency = '1h'"
            f" AND exchange = 'binance' AND timestamp IN {(*updated, deleted)}",
        )
        candles = [[SYMBOL, FREQUENCY, EXCHANGE, ts] for ts in (*updated, deleted)]
        if present != 3:  # a candle deleted before: keep the expectation exact
            return
        unit = self._batch_unit("sql", [*candles, key_of(extra, symbol)])

        def body() -> None:
            with self.market.begin() as connection:
                for statement in statements:
                    connection.exec_driver_sql(statement)

        self.run(unit, body)

    def loop(self) -> None:
        units = [
            self.agent,
            self.retype,
            self.message,
            self.message,
            self.cache_set,
            self.sql_app,
            self.new_candles,
            self.revise_candles,
            self.sql_candles,
            self.sql_candles,
        ]
        while True:
            self.rng.choice(units)()

    # -- a transaction left open --

    def open_transactions(self, wait: Callable[[], None], *, app: bool = True) -> None:
        """Change both stores (the market store alone unless *app*) through the library
        and plain SQL, call *wait* inside."""
        revised = [[*row[:5], float(row[5]) + 5000] for row in self.rows[:SLICE]]
        gone = int(self.rows[SLICE + 1][0])
        user = self.scalar(self.app, "SELECT id FROM users WHERE username = 'alice'")
        backend: Any
        io: Any
        if self.candles.backend == "postgresql":
            backend, io = postgres_io.PostgresCandles(self.market), postgres_io
        else:
            backend, io = sqlite_io.SqliteCandles(self.market, native=False), sqlite_io
        with backend.connection(write=True) as conn:
            # The library's own batch writer (on SQLite with its trigger swap) ...
            now = int(time.time() * 1000)
            io.write(conn, SYMBOL, FREQUENCY, EXCHANGE, to_candles(revised), now)
            io.record_batch(conn, "inside", 1, SLICE, SLICE, now)
            # ... and plain SQL on the same connection.
            conn.execute(
                "DELETE FROM time_series WHERE symbol = 'BTC/USDT' AND frequency = '1h'"
                f" AND exchange = 'binance' AND timestamp = {gone}"
            )
            conn.execute(candle_sql("INSIDE/USDT", self.rows[0]))
            if not app:
                wait()
                return
            with unit_of_work(self.app) as session:
                request = build_request(
                    user_id=user, symbol=SYMBOL, side="buy", order_type="market", amount="0.5"
                )
                create_order(session, request)
                session.add(A2AAgent(agent_id="inside", agent_type="analyst"))
                session.execute(
                    text("UPDATE a2a_agents SET agent_type = 'inside' WHERE agent_id = 'a1'")
                )
                session.execute(text("DELETE FROM cache_entries"))
                session.execute(text("DELETE FROM a2a_messages"))
                session.flush()
                wait()


def main() -> None:
    mode = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    with Stores(load_settings()) as stores:
        writer = Writer(stores, seed, first)
        if mode == "loop":
            writer.loop()
        writer.agent()
        writer.message()
        writer.new_candles()
        writer.sql_app()

        def inside() -> None:
            print("inside", flush=True)
            if mode == "hold":
                sys.stdin.readline()
            else:
                time.sleep(600)

        # On SQLite a writer holding the application store's lock would hold up every
        # other writer of it (the replicator registers its position there): a held
        # transaction stays in the market store.
        sqlite = stores.engine(stores.app).dialect.name == "sqlite"
        writer.open_transactions(inside, app=not (mode == "hold" and sqlite))
        print("committed", flush=True)


if __name__ == "__main__":
    main()
