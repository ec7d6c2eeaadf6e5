"""Logical replication (``replicate setup``): a PostgreSQL source on the main test server
replicated by PostgreSQL itself to a database on a second cluster (``.ci/setup.d/
replica-cluster.sh``: port 5433; ``CRYPTOTRADING_TEST_PG_REPLICA_URL``).

The source stores come from the usual fixtures; the replica is a throw-away database on
the second cluster, migrated from a template made once per module. Every test that
subscribes removes the subscription, its slot and the publications at teardown (a
database holding a logical slot cannot be dropped)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import URL, make_url

from cryptotrading import agents, migrations
from cryptotrading.db.engine import create_store_engine
from cryptotrading.market.store import MarketStore
from cryptotrading.models import APP_LINEAGE, MARKET_LINEAGE
from cryptotrading.ops import logical_replication
from cryptotrading.ops.replicated import replicated_tables
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import (
    BINANCE_DIR,
    SettingsFactory,
    assert_refused,
    invoke,
    invoke_json,
    load_candles,
    load_rows,
    make_user,
)

#: These tests are about replication, not connections: any two agents may talk.
OPEN = agents.QueuePolicy(open_messaging=True)

REPLICA_URL = os.environ.get(
    "CRYPTOTRADING_TEST_PG_REPLICA_URL", "postgresql+psycopg://postgres@127.0.0.1:5433/postgres"
)
LINEAGES = (APP_LINEAGE, MARKET_LINEAGE)
ONLY_POSTGRES = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _required(config: pytest.Config) -> bool:
    return bool(
        config.getoption("--require-postgres")
        or os.environ.get("CI", "").lower() in ("1", "true", "yes")
        or os.environ.get("CRYPTOTRADING_REQUIRE_POSTGRES")
    )


class ReplicaCluster:
    """Throw-away databases at head (both lineages) on the second cluster."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)
        self.admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self.prefix = f"ctrep_{os.environ.get('PYTEST_XDIST_WORKER', 'gw')}_{os.getpid()}"
        self.template = f"{self.prefix}_tpl"

    def url(self, database: str) -> str:
        return self.admin_url.set(database=database).render_as_string(hide_password=False)

    def make_template(self) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{self.template}"')
        self.execute(f'CREATE DATABASE "{self.template}" TEMPLATE template0')
        engine = create_store_engine(self.url(self.template))
        for lineage in LINEAGES:
            migrations.upgrade(engine, lineage)
        engine.dispose()

    def create(self) -> str:
        name = f"{self.prefix}_{uuid.uuid4().hex[:10]}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop a database; subscriptions left in it are dropped first (with their
        slots on the source when it answers)."""
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                names = connection.exec_driver_sql(
                    "SELECT subname FROM pg_subscription WHERE subdbid ="
                    " (SELECT oid FROM pg_database WHERE datname = current_database())"
                ).scalars()
                for name in list(names):
                    connection.exec_driver_sql(f'ALTER SUBSCRIPTION "{name}" DISABLE')
                    connection.exec_driver_sql(
                        f'ALTER SUBSCRIPTION "{name}" SET (slot_name = NONE)'
                    )
                    connection.exec_driver_sql(f'DROP SUBSCRIPTION "{name}"')
        finally:
            engine.dispose()
        self.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    def execute(self, statement: str) -> None:
        with self.admin.connect() as connection:
            connection.exec_driver_sql(statement)

    def close(self) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
        self.admin.dispose()


@pytest.fixture(scope="module")
def replica_cluster(request: pytest.FixtureRequest) -> Iterator[ReplicaCluster]:
    cluster = ReplicaCluster(REPLICA_URL)
    try:
        cluster.execute("SELECT 1")
    except Exception as exc:  # any driver error: no usable second cluster
        cluster.admin.dispose()
        message = f"replica PostgreSQL cluster unreachable at {make_url(REPLICA_URL)!r}: {exc}"
        if _required(request.config):
            pytest.fail(message + " (run .ci/setup.d/replica-cluster.sh)", pytrace=False)
        pytest.skip(message)
    try:
        cluster.make_template()
        yield cluster
    finally:
        cluster.close()


def _drop_our_slots(url: str) -> None:
    """Safety net: slots of ours left in a source database (a failed test)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE database = current_database() AND NOT active"
            )
            for name in LINEAGES:
                connection.exec_driver_sql(f"DROP PUBLICATION IF EXISTS cryptotrading_{name}")
    finally:
        engine.dispose()


@pytest.fixture
def pg_pair(make_settings: SettingsFactory, replica_cluster: ReplicaCluster) -> Iterator[Settings]:
    """Layout three on the main test server, its replica on the second cluster."""
    replica_url = replica_cluster.create()
    settings = make_settings("three").model_copy(update={"replica_url": replica_url})
    try:
        yield settings
    finally:
        try:
            with Stores(settings) as stores:
                logical_replication.setup(stores, drop=True)
        finally:
            replica_cluster.drop(replica_url)
            for url in {settings.app_url, settings.market_url}:
                assert url is not None
                _drop_our_slots(url)


# -- helpers ----------------------------------------------------------------------------


def _rows(engine: Engine, name: str) -> list[tuple[Any, ...]]:
    table = next(t for lin in LINEAGES for t in replicated_tables(lin) if t.name == name)
    with engine.connect() as connection:
        query = select(table).order_by(*table.primary_key.columns)
        return [tuple(row) for row in connection.execute(query)]


def _assert_replica_equal(stores: Stores) -> int:
    """Every replicated table, row for row; returns the number of rows compared."""
    replica = stores.engine("replica")
    compared = 0
    for lineage in LINEAGES:
        source = stores.engine(stores.primary_for(lineage))
        for table in replicated_tables(lineage):
            expected = _rows(source, table.name)
            assert _rows(replica, table.name) == expected, table.name
            compared += len(expected)
    return compared


def _scalar(engine: Engine, query: str) -> Any:
    with engine.connect() as connection:
        return connection.execute(text(query)).scalar()


def _objects(stores: Stores) -> dict[str, int]:
    """Subscriptions in the replica, publications and our slots in the sources."""
    found = {
        "subscriptions": _scalar(
            stores.engine("replica"),
            "SELECT count(*) FROM pg_subscription WHERE subdbid ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
    }
    for name in ("app", "market"):
        engine = stores.engine(name)
        found[f"{name} publications"] = _scalar(engine, "SELECT count(*) FROM pg_publication")
        found[f"{name} slots"] = _scalar(
            engine,
            "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()",
        )
    return found


NOTHING = {
    "subscriptions": 0,
    "app publications": 0,
    "app slots": 0,
    "market publications": 0,
    "market slots": 0,
}


def _write(stores: Stores, market_dir: Path, symbol: str) -> None:
    """Candles through the library (binary COPY; monthly partitions on the source)."""
    rows = load_rows(market_dir / BINANCE_DIR / f"{symbol.replace('/', '_')}-1h.json")
    MarketStore(stores).write_ohlcv(rows, symbol=symbol, timeframe="1h", exchange="binance")


# -- tests ------------------------------------------------------------------------------


@pytest.mark.slow
@ONLY_POSTGRES
def test_logical_replication_carries_every_change(pg_pair: Settings, market_data_dir: Path) -> None:
    with Stores(pg_pair) as stores:
        app = stores.engine("app")
        # Rows written before setup reach the replica through the initial copy.
        make_user(app, "alice")
        _write(stores, market_data_dir, "BTC/USDT")
        make_user(stores.engine("replica"), "mallory")  # a stray row the copy must not keep
        created = invoke_json(pg_pair, "replicate", "setup", "--json")
        assert created["applicable"] is True
        assert [(item["lineage"], item["action"]) for item in created["lineages"]] == [
            ("app", "created"),
            ("market", "created"),
        ]
        assert all(item["replica_emptied"] for item in created["lineages"])
        # The replica gets the monthly partitions the source has (2020-12 .. 2021-07).
        assert len(created["lineages"][1]["partitions_created"]) == 8
        assert all(logical_replication.is_active(stores, lineage) for lineage in LINEAGES)
        # Running it again changes nothing.
        again = invoke_json(pg_pair, "replicate", "setup", "--json")
        assert [item["action"] for item in again["lineages"]] == ["unchanged", "unchanged"]
        assert not again["lineages"][0]["replica_emptied"]

        # Writes through the library and through plain SQL, after the subscription.
        agents.register_agent(app, "acc-a", "analyst")
        agents.register_agent(app, "acc-b", "analyst")
        for n in range(3):
            agents.send_message(app, "acc-a", "acc-b", {"n": n}, policy=OPEN)
        load_candles(stores.engine("market"), market_data_dir, "ETH/USDT", "1h", "binance")
        with app.begin() as connection:
            connection.execute(
                text("UPDATE a2a_agents SET agent_type = 'risk' WHERE agent_id = 'acc-a'")
            )
            connection.execute(
                text("DELETE FROM a2a_messages WHERE id = (SELECT min(id) FROM a2a_messages)")
            )
            connection.execute(text("UPDATE users SET email = 'alice@example.org'"))
        with stores.engine("market").begin() as connection:
            connection.execute(
                text(
                    "UPDATE time_series SET close = close * 2 WHERE symbol = 'BTC/USDT'"
                    " AND timestamp < 1612137600000"
                )  # January 2021 and before
            )
            connection.execute(
                text(
                    "DELETE FROM time_series WHERE symbol = 'ETH/USDT'"
                    " AND timestamp >= 1625097600000"
                )
            )

        assert logical_replication.wait_caught_up(stores, timeout=120)
        assert _assert_replica_equal(stores) > 8000
        replica = stores.engine("replica")
        assert (
            _scalar(replica, "SELECT agent_type FROM a2a_agents WHERE agent_id = 'acc-a'") == "risk"
        )
        assert _scalar(replica, "SELECT count(*) FROM time_series_default") == 0

        rows = {row.lineage: row for row in logical_replication.status(stores)}
        assert set(rows) == set(LINEAGES)
        for lineage, row in rows.items():
            assert row.enabled and row.slot_active and row.worker_pid is not None
            assert row.tables_ready == row.tables_total == len(replicated_tables(lineage))
            assert row.lag_bytes is not None and row.lag_bytes >= 0
            assert row.flushed_lsn is not None and row.last_message_at is not None
        # The change-log replicator leaves logically replicated lineages alone, and
        # `replicate status` shows the subscription's view of every table.
        from cryptotrading.ops import replication

        assert replication.replicate_once(stores) == []
        lags = replication.status(stores)
        assert {lag.mode for lag in lags} == {"logical"}
        assert all(lag.sync_state == "ready" and lag.lag_bytes is not None for lag in lags)

        # A candle of a month the replica has no partition for lands in its DEFAULT
        # partition; the next setup creates the partition (the row moves into it).
        MarketStore(stores).write_ohlcv(
            [[1_704_067_200_000, 1.0, 2.0, 0.5, 1.5, 10.0]],  # 2024-01-01
            symbol="BTC/USDT",
            timeframe="1h",
            exchange="binance",
        )
        assert logical_replication.wait_caught_up(stores, timeout=60)
        _assert_replica_equal(stores)
        assert _scalar(replica, "SELECT count(*) FROM time_series_default") == 1
        updated = invoke_json(pg_pair, "replicate", "setup", "--json")
        assert [item["action"] for item in updated["lineages"]] == ["unchanged", "updated"]
        assert updated["lineages"][1]["partitions_created"] == ["time_series_p202401"]
        assert _scalar(replica, "SELECT count(*) FROM time_series_default") == 0
        assert _scalar(replica, "SELECT count(*) FROM time_series_p202401") == 1
        assert logical_replication.wait_caught_up(stores, timeout=60)
        _assert_replica_equal(stores)

        # A paused subscription still owns its tables; a slot lost on the source (dropped
        # by hand, or the source restored) is named, and --drop still cleans up.
        with replica.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("ALTER SUBSCRIPTION cryptotrading_app DISABLE")
            )
        assert logical_replication.is_active(stores, APP_LINEAGE)
        for _ in range(100):
            paused = logical_replication.status(stores)[0]
            if not paused.slot_active and paused.worker_pid is None:  # both gone, not one
                break
            time.sleep(0.1)
        assert not paused.enabled and not paused.slot_active and paused.worker_pid is None
        with app.connect() as connection:
            connection.execute(
                text("SELECT pg_drop_replication_slot(:slot)"), {"slot": paused.slot}
            )
        result = invoke(pg_pair, "replicate", "setup")
        assert_refused(result, f"uses slot {paused.slot}, which the source no longer has", 2)

        dropped = invoke_json(pg_pair, "replicate", "setup", "--drop", "--json")
        assert [item["action"] for item in dropped["lineages"]] == ["dropped", "dropped"]
        assert _objects(stores) == NOTHING
        assert not any(logical_replication.is_active(stores, lineage) for lineage in LINEAGES)
        assert logical_replication.status(stores) == []
        again = invoke_json(pg_pair, "replicate", "setup", "--drop", "--json")
        assert [item["action"] for item in again["lineages"]] == ["absent", "absent"]


@ONLY_POSTGRES
def test_setup_refuses_a_replica_whose_schema_differs(pg_pair: Settings) -> None:
    with Stores(pg_pair) as stores:
        replica = stores.engine("replica")
        with replica.begin() as connection:
            connection.execute(text("ALTER TABLE a2a_agents ADD COLUMN note text"))
        result = invoke(pg_pair, "replicate", "setup")
        assert_refused(result, "column a2a_agents.note (text) is on the replica", exit_code=4)
        assert "upgrade the replica first" in result.stderr
        assert _objects(stores) == NOTHING

        with replica.begin() as connection:
            connection.execute(text("ALTER TABLE a2a_agents DROP COLUMN note"))
            connection.execute(text("ALTER TABLE time_series DROP COLUMN ingested_at"))
        result = invoke(pg_pair, "replicate", "setup")
        assert_refused(
            result, "column time_series.ingested_at (bigint) is missing on the replica", 4
        )
        assert _objects(stores) == NOTHING

        older = migrations.known_revisions(APP_LINEAGE)[-2]
        with replica.begin() as connection:
            connection.execute(text(f"UPDATE alembic_version_app SET version_num = '{older}'"))
        result = invoke(pg_pair, "replicate", "setup")
        head = migrations.head(APP_LINEAGE)
        assert_refused(
            result,
            f"lineage 'app' is at schema version {head} on the source but {older} on the replica",
            exit_code=4,
        )
        assert _objects(stores) == NOTHING


def test_setup_refuses_a_source_without_logical_wal(
    replica_cluster: ReplicaCluster, tmp_path: Path
) -> None:
    """The second cluster runs with the default wal_level=replica: as a source it is
    refused with the setting named."""
    source, replica = replica_cluster.create(), replica_cluster.create()
    try:
        settings = Settings(
            data_dir=tmp_path / "data",
            layout="two",
            app_url=source,
            market_url=source,
            replica_url=replica,
        )
        result = invoke(settings, "replicate", "setup")
        assert_refused(result, "wal_level=replica; logical replication needs wal_level=logical", 2)
        assert "ALTER SYSTEM SET wal_level = logical" in result.stderr
    finally:
        replica_cluster.drop(source)
        replica_cluster.drop(replica)


def test_a_sqlite_end_needs_no_setup(make_settings: SettingsFactory, backend: str) -> None:
    """SQLite stores, or PostgreSQL stores with a SQLite replica: nothing to set up."""
    settings = make_settings("three")
    if backend == "postgresql":
        settings = settings.model_copy(
            update={"replica_url": f"sqlite:///{settings.data_dir / 'rex.db'}"}
        )
    for args in (("setup",), ("setup", "--drop")):
        answer = invoke_json(settings, "replicate", *args, "--json")
        assert answer["applicable"] is False and answer["lineages"] == []
        assert "change-log replication" in answer["message"]
    shown = invoke(settings, "replicate", "setup", code=0)
    assert "needs no setup" in shown.stdout
    with Stores(settings) as stores:
        assert logical_replication.status(stores) == []
        assert not logical_replication.is_active(stores, APP_LINEAGE)
        assert logical_replication.wait_caught_up(stores, timeout=0.1) is False


_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1
)


@hypothesis_settings(max_examples=200, deadline=None)
@given(user=_TEXT, password=_TEXT, database=_TEXT)
def test_conninfo_quotes_hostile_names(user: str, password: str, database: str) -> None:
    """Whatever the source URL holds, libpq reads back exactly its user, password and
    database (no injected keyword)."""
    url = URL.create(
        "postgresql+psycopg",
        username=user,
        password=password,
        host="127.0.0.1",
        port=5432,
        database=database,
    ).render_as_string(hide_password=False)
    parsed = make_url(url)  # what the settings would hold
    assert conninfo_to_dict(logical_replication.conninfo(url)) == {
        "host": "127.0.0.1",
        "port": "5432",
        "dbname": parsed.database,
        "user": parsed.username,
        "password": parsed.password,
    }
