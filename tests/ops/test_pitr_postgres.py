"""Point-in-time recovery of PostgreSQL stores with pgBackRest (``backup setup``,
``backup restore ID --to TIME``), on the dedicated cluster ``.ci/setup.d/pitr-cluster.sh``
creates (``CRYPTOTRADING_TEST_PG_PITR_URL``, default port 5434): WAL archiving is
switched on there, never on the shared test server."""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from cryptotrading.errors import ValidationError
from cryptotrading.models import lineage_tables
from cryptotrading.ops import pitr, pitr_postgres
from cryptotrading.ops.lifecycle import initialize
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import (
    SHARED_DIR,
    assert_refused,
    invoke,
    invoke_json,
    load_candles,
    make_agent,
    make_user,
    settings_env,
)

PITR_URL = os.environ.get(
    "CRYPTOTRADING_TEST_PG_PITR_URL", "postgresql+psycopg://postgres@127.0.0.1:5434/postgres"
)
MARKET_DIR = SHARED_DIR / "data" / "market"
LOCK_FILE = Path(tempfile.gettempdir()) / "cryptotrading-pitr-tests.lock"


def _required() -> bool:
    return bool(
        os.environ.get("CI", "").lower() in ("1", "true", "yes")
        or os.environ.get("CRYPTOTRADING_REQUIRE_POSTGRES")
    )


class PitrCluster:
    """The PITR test cluster: a pgBackRest directory of this module run, databases."""

    def __init__(self, admin_url: str, root: Path) -> None:
        self.admin_url = make_url(admin_url)
        # no pool: `backup setup --restart` ends every session of the cluster
        self.admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self.root = root
        self.prefix = f"ctpitr_{uuid.uuid4().hex[:8]}"

    def settings(self, data_dir: Path) -> Settings:
        """A two-store layout (app, market) on fresh databases at head, set up for PITR."""
        urls = {}
        with self.admin.connect() as connection:
            for store in ("app", "market"):
                name = f"{self.prefix}_{uuid.uuid4().hex[:6]}_{store}"
                connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
                urls[f"{store}_url"] = self.admin_url.set(database=name).render_as_string(
                    hide_password=False
                )
        built = Settings(data_dir=data_dir, layout="two", pgbackrest_dir=self.root, **urls)  # type: ignore[arg-type]
        with Stores(built) as stores:
            initialize(stores)
            result = pitr_postgres.setup(stores, restart=True)
        assert result.ready, result
        return built

    def databases(self) -> set[str]:
        with self.admin.connect() as connection:
            return {
                str(row[0])
                for row in connection.execute(
                    text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                    {"p": f"{self.prefix}%"},
                )
            }

    def close(self) -> None:
        with self.admin.connect() as connection:
            for name in self.databases():
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            # archiving pointed at this run's repository, which goes away now
            connection.execute(text("ALTER SYSTEM SET archive_command = 'true'"))
            connection.execute(text("SELECT pg_reload_conf()"))
        self.admin.dispose()


@pytest.fixture(scope="module")
def cluster() -> Iterator[PitrCluster]:
    """The PITR cluster (skipped when absent, an error under CI), held exclusively:
    one archive_command per cluster, so test processes take turns."""
    problem = None
    if shutil.which("pgbackrest") is None:
        problem = "pgbackrest is not installed (.ci/setup.d/pitr-cluster.sh installs it)"
    else:
        engine = create_engine(PITR_URL)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error: no usable cluster
            problem = f"the PITR cluster is unreachable at {make_url(PITR_URL)!r}: {exc}"
        finally:
            engine.dispose()
    if problem:
        if _required():
            pytest.fail(problem + " (required: CI / CRYPTOTRADING_REQUIRE_POSTGRES)")
        pytest.skip(problem)
    with LOCK_FILE.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        root = Path(tempfile.mkdtemp(prefix="ct-pitr-test-"))
        server = PitrCluster(PITR_URL, root)
        try:
            yield server
        finally:
            server.close()
            shutil.rmtree(root, ignore_errors=True)


def snapshot(settings: Settings) -> dict[str, dict[str, list[str]]]:
    """Every row of every table of both stores, as sorted text (order-independent)."""
    taken: dict[str, dict[str, list[str]]] = {}
    with Stores(settings) as stores:
        for store in stores:
            tables: dict[str, list[str]] = {}
            with stores.engine(store).connect() as connection:
                for lineage in store.lineages:
                    for table in lineage_tables(lineage):
                        rows = connection.execute(text(f'SELECT * FROM "{table.name}"')).all()
                        tables[table.name] = sorted(repr(tuple(row)) for row in rows)
            taken[store.name] = tables
    return taken


def _engines(settings: Settings) -> tuple[Any, Any]:
    app = create_engine(str(settings.app_url))
    market = create_engine(str(settings.market_url))
    return app, market


def _sql(engine: Any, *statements: str) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def _env(settings: Settings) -> dict[str, str]:
    return {**settings_env(settings), "CRYPTOTRADING_PGBACKREST_DIR": str(settings.pgbackrest_dir)}


@pytest.mark.slow
def test_restore_to_a_noted_time_brings_every_table_back(
    cluster: PitrCluster, tmp_path: Path
) -> None:
    """Write (library, plain SQL, real candles), take a differential backup, write
    more, note the time; then insert, update and delete; restore both stores --to the
    noted time through the CLI: every table equals the snapshot taken at that time."""
    settings_ = cluster.settings(tmp_path / "data")
    app, market = _engines(settings_)
    try:
        alice = make_user(app, "alice")
        make_user(app, "bob")
        make_agent(app, "acc-a", "analyst")
        load_candles(market, MARKET_DIR, "BTC/USDT", "1h")
        with Stores(settings_) as stores:
            made = pitr_postgres.backup(stores, kind="daily")
        assert [b.type for b in made] == ["diff"]
        time.sleep(1.1)  # a base backup is usable from the second after it ended
        make_agent(app, "acc-b", "analyst")
        _sql(app, f"UPDATE users SET email = 'alice@new.example' WHERE id = {alice}")
        load_candles(market, MARKET_DIR, "ETH/USDT", "1h")
        then = snapshot(settings_)
        noted = datetime.now(UTC)
        time.sleep(0.3)  # every later commit is stamped after the noted time

        make_user(app, "carol")
        _sql(
            app,
            "UPDATE a2a_agents SET agent_type = 'risk' WHERE agent_id = 'acc-a'",
            "DELETE FROM a2a_agents WHERE agent_id = 'acc-b'",
            "DELETE FROM users WHERE username = 'bob'",
        )
        _sql(market, "DELETE FROM time_series WHERE symbol = 'ETH/USDT'")
        _sql(market, "UPDATE time_series SET close = close * 2 WHERE symbol = 'BTC/USDT'")
        load_candles(market, MARKET_DIR, "SOL/USDT", "1h")
    finally:
        app.dispose()
        market.dispose()
    assert snapshot(settings_) != then  # the restore has something to undo

    env = _env(settings_)
    restored = {}
    for store in ("app", "market"):
        restored[store] = invoke_json(
            env, "backup", "restore", store, "--to", noted.isoformat(), "--json"
        )
    assert snapshot(settings_) == then
    for store, result in restored.items():
        assert result["store"] == store and result["backend"] == "postgresql"
        assert result["base_backup"] == made[0].label
        assert result["wal_bytes_replayed"] > 0
        assert result["kept_aside"] in cluster.databases()
        assert datetime.fromisoformat(result["recovered_to"]) <= noted
    assert restored["market"]["row_counts"]["time_series"] == len(then["market"]["time_series"])
    assert list((settings_.pgbackrest_dir / "scratch").iterdir()) == []  # scratch removed


@pytest.mark.slow
def test_restore_to_five_random_points_of_a_workload(cluster: PitrCluster, tmp_path: Path) -> None:
    """A recorded workload of library and plain-SQL inserts, updates and deletes; at 5
    random moments the application store is snapshotted; restoring to each moment
    (latest first) gives back exactly that snapshot."""
    seed = int(os.environ.get("PITR_SEED", time.time()))
    rng = random.Random(seed)
    settings_ = cluster.settings(tmp_path / "data")
    app, market = _engines(settings_)
    points: list[tuple[datetime, dict[str, list[str]]]] = []
    try:
        make_user(app, "base")
        with Stores(settings_) as stores:
            pitr_postgres.backup(stores, kind="daily")
        time.sleep(1.1)  # a base backup is usable from the second after it ended
        stops = set(rng.sample(range(2, 28), 5))
        for n in range(30):
            choice = rng.randrange(5)
            if choice == 0:
                make_user(app, f"user{n}")
            elif choice == 1:
                make_agent(app, f"agent-{n}", rng.choice(["analyst", "risk"]))
            elif choice == 2:
                _sql(
                    app,
                    f"UPDATE users SET email = 'u' || id || '-{n}@x.example'"
                    f" WHERE mod(id, 2) = {n % 2}",
                )
            elif choice == 3:
                _sql(app, "DELETE FROM a2a_agents WHERE id = (SELECT min(id) FROM a2a_agents)")
            else:
                _sql(
                    app,
                    "INSERT INTO system_metrics (metric_name, value, recorded_at)"
                    f" VALUES ('m{n}', {rng.random()!r}, now())",
                )
            if n in stops:
                time.sleep(0.3)
                noted = datetime.now(UTC)
                points.append((noted, snapshot(settings_)["app"]))
                time.sleep(0.3)  # every later commit is stamped after the noted time
    finally:
        app.dispose()
        market.dispose()
    env = _env(settings_)
    for noted, then in reversed(points):
        result = invoke_json(env, "backup", "restore", "app", "--to", noted.isoformat(), "--json")
        got = snapshot(settings_)["app"]
        for table, rows in then.items():
            assert got[table] == rows, (seed, noted, table, result)


# -- the time to restore to --------------------------------------------------------------

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@given(st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_parse_target_takes_a_past_time_or_names_the_problem(value: str) -> None:
    try:
        moment = pitr.parse_target(value, now=NOW)
    except ValidationError as exc:
        assert exc.hint
        return
    assert moment.tzinfo is not None and moment <= NOW


@given(
    st.one_of(
        st.datetimes(min_value=datetime(2026, 6, 1, 12, 0, 1), max_value=datetime(9999, 12, 31)),
        st.sampled_from(["9999-12-31T23:59:59-05:00", "0001-01-01T00:00+01:00", "2026-13-01"]),
    )
)
@settings(max_examples=100, deadline=None)
def test_parse_target_refuses_the_future_and_times_beyond_the_calendar(value: Any) -> None:
    text_ = value if isinstance(value, str) else value.isoformat() + "Z"
    with pytest.raises(ValidationError) as raised:
        pitr.parse_target(text_, now=NOW)
    assert raised.value.hint


HOSTILE = st.one_of(
    st.text(max_size=70),
    st.sampled_from(
        [
            "",
            "now",
            "2026-12-01T10:15:00Z; DROP DATABASE postgres",
            "2026-12-01T10:15:00\x00Z",
            "../../etc/passwd",
            "9" * 500,
            "9999-12-31T23:59:59-05:00",
            "0001-01-01T00:00+01:00",
            "2001-01-01T00:00:00Z",  # before the oldest backup
            "2019-06-01",  # before the oldest backup
        ]
    ),
    st.datetimes(min_value=datetime(2100, 1, 1), max_value=datetime(9999, 1, 1)).map(
        lambda d: d.isoformat() + "Z"
    ),  # in the future
)


@pytest.mark.slow
def test_restore_to_a_bad_time_is_refused_and_writes_nothing(
    cluster: PitrCluster, tmp_path: Path
) -> None:
    """Hostile --to values, times before the oldest backup or in the future: a named
    error with a hint, exit non-zero, no database, row or scratch file changed."""
    settings_ = cluster.settings(tmp_path / "data")
    app, _market = _engines(settings_)
    make_user(app, "alice")
    app.dispose()
    _market.dispose()
    env = _env(settings_)
    before = (snapshot(settings_), cluster.databases())
    scratch = settings_.pgbackrest_dir / "scratch"

    @given(HOSTILE)
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    def refused(value: str) -> None:
        if "\x00" in value:
            value = value.replace("\x00", "\\0")  # argv cannot carry NUL
        result = invoke(env, "backup", "restore", "app", "--to", value)
        assert result.exit_code != 0
        assert_refused(result, "", exit_code=result.exit_code)
        assert list(scratch.iterdir()) == []

    refused()
    assert (snapshot(settings_), cluster.databases()) == before


@pytest.mark.slow
def test_an_unknown_id_or_a_time_before_the_oldest_backup_is_a_named_error(
    cluster: PitrCluster, tmp_path: Path
) -> None:
    built = cluster.settings(tmp_path / "data")
    result = invoke(
        _env(built), "backup", "restore", "app-daily-nope", "--to", "2026-01-01T00:00:00Z"
    )
    assert_refused(result, "app-daily-nope", exit_code=6)
    with Stores(built) as stores:
        oldest = pitr_postgres.list_base_backups(stores, "app")[0]
        with pytest.raises(ValidationError, match="before the oldest kept base backup"):
            pitr.restore_to(stores, "app", None, oldest.stopped - timedelta(seconds=5))
