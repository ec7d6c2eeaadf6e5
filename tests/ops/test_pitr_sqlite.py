"""Point-in-time recovery of a SQLite application store: full backup + change log.

SQLite only by nature: PostgreSQL stores recover through pgBackRest
(tests/ops/test_pitr_postgres.py). A recorded workload of library and plain-SQL
inserts, updates and deletes; at 5 random moments every application table is
snapshotted; restoring to each moment (latest first: a restore abandons the history
after its point) gives back exactly that snapshot.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.models import APP_LINEAGE
from cryptotrading.ops import backup, backup_signing, changelog_archive, pitr_sqlite
from cryptotrading.ops.replicated import replicated_tables
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import invoke, make_agent, make_user
from tests.ops.helpers import put_cache, table_rows

APP_TABLES = [t.name for t in replicated_tables(APP_LINEAGE)] + ["change_log"]


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", layout="three")
    assert invoke(settings, "init").exit_code == 0
    return settings


def _snapshot(stores: Stores) -> dict[str, list[tuple[Any, ...]]]:
    engine = stores.engine("app")
    return {name: table_rows(engine, name) for name in APP_TABLES}


def _moment() -> datetime:
    """A moment strictly between two changes (trigger times are in milliseconds)."""
    time.sleep(0.005)
    now = datetime.now(UTC)
    time.sleep(0.005)
    return now


def _step(stores: Stores, rng: random.Random, n: int) -> None:
    app = stores.engine("app")
    choice = rng.randrange(6)
    if choice == 0:
        make_user(app, f"user{n}")
    elif choice == 1:
        make_agent(app, f"agent-{n}", rng.choice(["analyst", "risk"]))
    elif choice == 2:
        put_cache(app, f"key{n % 4}", {"n": n, "x": rng.random()})
    elif choice == 3:
        with app.begin() as connection:
            connection.exec_driver_sql(
                f"UPDATE users SET email = 'u' || id || '-{n}@changed.example',"
                f" is_active = {n % 2} WHERE id % 3 = {n % 3}"
            )
    elif choice == 4:
        with app.begin() as connection:
            connection.exec_driver_sql(
                "DELETE FROM cache_entries WHERE id IN"
                f" (SELECT id FROM cache_entries ORDER BY id LIMIT 1 OFFSET {n % 2})"
            )
    else:
        with app.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO system_metrics (metric_name, value, recorded_at)"
                f" VALUES ('m{n}', {rng.random() * 1e6!r}, '2026-01-01 00:00:00')"
            )


@pytest.mark.slow
def test_recovery_to_five_random_points_gives_back_every_table(
    sqlite_settings: Settings,
) -> None:
    seed = int(os.environ.get("PITR_SEED", time.time()))
    rng = random.Random(seed)
    points: list[tuple[datetime, dict[str, list[tuple[Any, ...]]]]] = []
    with Stores(sqlite_settings) as stores:
        make_user(stores.engine("app"), "base")
        backup.create_backup(stores, "app")
        stops = sorted(rng.sample(range(5, 55), 5))  # changes follow the last point
        for n in range(60):
            _step(stores, rng, n)
            if n == 30:
                backup.create_backup(stores, "app")  # a later base for later points
            if n in stops:
                points.append((_moment(), _snapshot(stores)))
        final = _snapshot(stores)
    assert final != points[-1][1]
    for moment, expected in reversed(points):
        with Stores(sqlite_settings) as stores:
            result = pitr_sqlite.restore_to(stores, "app", None, moment)
        assert result.changes_replayed is not None and result.kept_aside, (seed, result)
        with Stores(sqlite_settings) as stores:
            got = _snapshot(stores)
        for name in APP_TABLES:
            assert got[name] == expected[name], (seed, moment, name)
    # The recovered store goes on: new changes are logged, archived and recoverable.
    with Stores(sqlite_settings) as stores:
        make_user(stores.engine("app"), "after-recovery")
        moment = _moment()
        expected = _snapshot(stores)
        make_user(stores.engine("app"), "later")
        result = pitr_sqlite.restore_to(stores, "app", None, moment)
    with Stores(sqlite_settings) as stores:
        got = _snapshot(stores)
    for name in APP_TABLES:
        assert got[name] == expected[name], (seed, name, result)


def test_cli_restore_to_a_time_and_tamper_detection(sqlite_settings: Settings) -> None:
    with Stores(sqlite_settings) as stores:
        make_user(stores.engine("app"), "alice")
        backup.create_backup(stores, "app")
        make_user(stores.engine("app"), "bob")
        moment = _moment()
        make_user(stores.engine("app"), "carol")
        directory = backup.default_directory(stores)
        changelog_archive.archive_log(stores, directory)
    folder = changelog_archive.segment_dir(directory, "app")
    data = next(folder.glob("*.jsonl.gz"))
    original = data.read_bytes()
    lines = gzip.decompress(original).splitlines()
    forged = [json.loads(line) for line in lines]
    forged[-1]["op"] = "D"
    data.write_bytes(gzip.compress(b"\n".join(json.dumps(e).encode() for e in forged)))
    with Stores(sqlite_settings) as stores:
        before = _snapshot(stores)
        with pytest.raises(ValidationError) as caught:
            pitr_sqlite.restore_to(stores, "app", None, moment)
        assert "SHA-256" in caught.value.message and caught.value.hint
    with Stores(sqlite_settings) as stores:
        assert _snapshot(stores) == before  # nothing was restored
    refused = invoke(sqlite_settings, "backup", "restore", "app", "--to", moment.isoformat())
    assert refused.exit_code != 0 and "Traceback" not in refused.stderr
    assert "SHA-256" in refused.stderr and "hint:" in refused.stderr
    data.write_bytes(original)
    result = invoke(
        sqlite_settings, "backup", "restore", "app", "--to", moment.isoformat(), "--json"
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["backend"], report["changes_replayed"]) == ("sqlite", 1)
    assert report["row_counts"]["users"] == 2
    with Stores(sqlite_settings) as stores:
        names = [r[1] for r in table_rows(stores.engine("app"), "users")]
    assert names == ["alice", "bob"]


def test_refusals_name_the_problem(sqlite_settings: Settings, tmp_path: Path) -> None:
    with Stores(sqlite_settings) as stores:
        with pytest.raises(ValidationError, match="future"):
            pitr_sqlite.restore_to(stores, "app", None, datetime.now(UTC) + timedelta(hours=1))
        with pytest.raises(NotFoundError) as caught:
            pitr_sqlite.restore_to(stores, "app", None, datetime.now(UTC) - timedelta(days=1))
        assert "oldest kept full backup" in caught.value.hint
        with pytest.raises(ValidationError, match="holds candles"):
            pitr_sqlite.restore_to(stores, "market", None, datetime.now(UTC))
    single = Settings(data_dir=tmp_path / "single", layout="single")
    assert invoke(single, "init").exit_code == 0
    with Stores(single) as stores, pytest.raises(ValidationError, match="holds candles"):
        pitr_sqlite.restore_to(
            stores, stores.primary_for(APP_LINEAGE).name, None, datetime.now(UTC)
        )


def test_the_log_is_trimmed_only_once_archived_and_applied(sqlite_settings: Settings) -> None:
    from cryptotrading.ops import replication

    with Stores(sqlite_settings) as stores:
        for n in range(5):
            make_user(stores.engine("app"), f"u{n}")
        directory = backup.default_directory(stores)
        log = stores.engine("app")
        assert changelog_archive.trim_logs(stores, directory)["change_log"] == 0  # not archived
        changelog_archive.archive_log(stores, directory)
        replication.replicate_once(stores)
        make_user(stores.engine("app"), "late")  # applied by nobody yet
        trimmed = changelog_archive.trim_logs(stores, directory)
        assert trimmed["change_log"] == 5
        with log.connect() as connection:
            left = connection.exec_driver_sql("SELECT count(*) FROM change_log").scalar()
        assert left == 1
        replication.replicate_once(stores)  # the replica still gets the late change
        assert table_rows(stores.engine("replica"), "users") == table_rows(log, "users")


_HOSTILE = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(
            st.sampled_from(
                [
                    "store",
                    "first_seq",
                    "last_seq",
                    "entries",
                    "sha256",
                    "file",
                    "signature",
                    "first_changed_at",
                    "last_changed_at",
                ]
            ),
            st.one_of(st.none(), st.integers(), st.text(max_size=30), st.lists(st.integers())),
        ),
    ),
)


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=_HOSTILE)
def test_hostile_segment_manifests_are_refused_by_name(tmp_path: Path, payload: bytes) -> None:
    key = backup_signing.BackupKey(path=tmp_path / "key", secret=b"k" * 32)
    path = tmp_path / "000000000001-000000000002.json"
    path.write_bytes(payload)
    with pytest.raises(ValidationError) as caught:
        changelog_archive.read_segment_manifest(path, key)
    assert "segment" in caught.value.message and caught.value.hint


def test_row_images_keep_reals_and_blobs_exact(sqlite_settings: Settings) -> None:
    """A real needs 17 significant digits and a blob is not JSON: both survive."""
    with Stores(sqlite_settings) as stores:
        backup.create_backup(stores, "app")
        with stores.engine("app").begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO system_metrics (metric_name, value, recorded_at)"
                " VALUES ('pi', 0.30000000000000004, '2026-01-01 00:00:00'),"
                " ('tiny', 5e-324, '2026-01-01 00:00:00'), ('huge', 1.7976931348623157e308,"
                " '2026-01-01 00:00:00'), ('small', 2.2250738585072014e-308, '2026-01-01'),"
                " ('neg', -123456.78901234567, '2026-01-01'), ('zero', -0.0, '2026-01-01'),"
                " ('inf', 9e999, '2026-01-01')"
            )
        moment = _moment()
        expected = table_rows(stores.engine("app"), "system_metrics")
        make_user(stores.engine("app"), "after")
        pitr_sqlite.restore_to(stores, "app", None, moment)
    with Stores(sqlite_settings) as stores:
        assert table_rows(stores.engine("app"), "system_metrics") == expected
    path = sqlite_settings.data_dir / "cryptotrading.db"
    with sqlite3.connect(path) as conn:
        image = conn.execute("SELECT row_image FROM change_log WHERE table_name = 'system_metrics'"
                             " ORDER BY seq LIMIT 1").fetchone()[0]  # fmt: skip
    conn.close()
    assert '["r","0.30000000000000004",' in image


def test_a_plain_restore_starts_a_new_history(sqlite_settings: Settings) -> None:
    """`backup restore` archives the log it replaces and sets aside the history after
    the backup: later changes are archived and a later point in time is reachable."""
    with Stores(sqlite_settings) as stores:
        make_user(stores.engine("app"), "kept")
        base = backup.create_backup(stores, "app")
        make_user(stores.engine("app"), "abandoned")
        backup.restore_backup(stores, base.id)
    with Stores(sqlite_settings) as stores:
        make_user(stores.engine("app"), "new-history")
        moment = _moment()
        expected = _snapshot(stores)
        make_user(stores.engine("app"), "later")
        result = pitr_sqlite.restore_to(stores, "app", None, moment)
    assert result.changes_replayed == 1
    with Stores(sqlite_settings) as stores:
        assert _snapshot(stores) == expected
        names = [r[1] for r in table_rows(stores.engine("app"), "users")]
    assert names == ["kept", "new-history"]
    folder = changelog_archive.segment_dir(sqlite_settings.data_dir / "backups", "app")
    assert any(p.name.startswith("abandoned-") for p in folder.iterdir())
