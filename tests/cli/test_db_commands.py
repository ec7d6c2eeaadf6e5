"""``cryptotrading init`` and ``db ...``: output, --json and exit codes on both backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from cryptotrading.models import EXTENSIONS, SCHEMA_VERSIONS, lineage_tables
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, invoke, invoke_json

HEAD = SCHEMA_VERSIONS[-1]


@pytest.fixture
def fresh(make_settings: SettingsFactory) -> Settings:
    return make_settings("three", migrated=False)


def test_init_then_current_history_info(fresh: Settings) -> None:
    steps = invoke_json(fresh, "init", "--json")
    assert {(s["store"], s["lineage"], s["after"]) for s in steps} == {  # type: ignore[union-attr]
        ("app", "app", HEAD),
        ("market", "market", HEAD),
        ("replica", "app", HEAD),
        ("replica", "market", HEAD),
    }
    again = invoke_json(fresh, "init", "--json")
    assert all(s["before"] == s["after"] == HEAD for s in again)  # type: ignore[union-attr]

    current = invoke_json(fresh, "db", "current", "--json")
    assert {c["version"] for c in current} == {HEAD}  # type: ignore[union-attr]

    history = invoke_json(fresh, "db", "history", "--json")
    versions = [h["version"] for h in history if h["lineage"] == "app"]  # type: ignore[union-attr,index]
    assert versions == list(SCHEMA_VERSIONS)

    info = invoke_json(fresh, "db", "info", "--json")
    by_store = {i["store"]: i for i in info}  # type: ignore[union-attr,index]
    assert by_store["app"]["table_count"] == len(lineage_tables("app")) == 51
    assert by_store["market"]["tables"] == {
        "time_series": 0,
        "ingestion_batches": 0,
        "market_change_log": 0,
        "series_changes": 0,
    }
    assert by_store["replica"]["table_count"] == 46 + len(EXTENSIONS)
    assert by_store["app"]["versions"] == {"app": HEAD}

    assert "time_series" in invoke(fresh, "db", "info", code=0).stdout


def test_check_passes_then_fails_on_drift(stores: Stores) -> None:
    report = invoke_json(stores.settings, "db", "check", "--json")
    assert report["ok"] is True  # type: ignore[index]
    checks = {(r["store"], r["check"]) for r in report["results"]}  # type: ignore[index]
    assert ("app", "integrity") in checks and ("market", "drift") in checks

    with stores.engine(stores.app).begin() as connection:
        connection.execute(text("DROP INDEX ix_market_data_symbol_timestamp"))
    report = invoke_json(stores.settings, "db", "check", "--json", code=1)
    failed = [r for r in report["results"] if not r["ok"]]
    assert [(r["store"], r["check"]) for r in failed] == [("app", "drift")]
    assert "ix_market_data_symbol_timestamp" in failed[0]["detail"]


def test_downgrade_and_upgrade_commands(stores: Stores) -> None:
    steps = invoke_json(stores.settings, "db", "downgrade", "1.5.0", "--store", "app", "--json")
    assert steps == [{"store": "app", "lineage": "app", "before": HEAD, "after": "1.5.0"}]
    invoke(stores.settings, "db", "check", code=1)  # the app store is behind head
    steps = invoke_json(stores.settings, "db", "upgrade", "--json")
    assert {s["after"] for s in steps} == {HEAD}  # type: ignore[union-attr]


def test_unknown_revision_is_a_usage_error(stores: Stores) -> None:
    result = invoke(stores.settings, "db", "downgrade", "1.2.3", code=5)
    assert "unknown schema version '1.2.3'" in result.stderr and "hint:" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_vacuum_and_analyze(stores: Stores) -> None:
    for command in ("vacuum", "analyze"):
        results = invoke_json(stores.settings, "db", command, "--json")
        assert {r["store"] for r in results} == {"app", "market", "replica"}  # type: ignore[union-attr]
        assert all(r["operation"] == command for r in results)  # type: ignore[union-attr]


def test_export_schema(stores: Stores, tmp_path: Path) -> None:
    target = tmp_path / "schema.sql"
    payload = invoke_json(stores.settings, "db", "export-schema", "--file", str(target), "--json")
    ddl = target.read_text()
    assert payload["ddl"] == ddl  # type: ignore[index]
    assert ddl.count("-- store:") == 3
    assert (
        "CREATE TABLE" in ddl and "time_series" in ddl and "ix_time_series_symbol_timestamp" in ddl
    )
    assert invoke(stores.settings, "db", "export-schema", code=0).stdout == ddl


def test_missing_store_is_reported_not_created(fresh: Settings) -> None:
    result = invoke(fresh, "db", "info", "--json")
    out, err = result.stdout, result.stderr
    if fresh.app_url is None:  # SQLite: the file is missing, and stays missing
        assert result.exit_code == 2
        assert "does not exist" in err and "cryptotrading init" in err
        assert "Traceback" not in out + err
        assert not fresh.data_dir.exists()
    else:  # PostgreSQL: the (empty) database exists but carries no schema yet
        assert result.exit_code == 0
        assert all(set(i["versions"].values()) == {None} for i in json.loads(out))


def test_unreachable_postgres_url(tmp_path: Path) -> None:
    env = {
        "CRYPTOTRADING_DATA_DIR": str(tmp_path / "data"),
        "CRYPTOTRADING_APP_URL": "postgresql://postgres@127.0.0.1:1/nowhere",
    }
    result = invoke(env, "init")
    assert result.exit_code == 3
    assert "unavailable" in result.stderr and "hint:" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    debug = invoke(env, "--debug", "init")
    assert debug.exit_code == 3 and "Traceback" in debug.stderr


def test_bad_settings_are_configuration_errors(tmp_path: Path) -> None:
    result = invoke({}, "--layout", "four", "db", "info")
    assert result.exit_code == 2
    assert "invalid setting layout" in result.stderr
    result = invoke({"CRYPTOTRADING_APP_URL": "mysql://root@localhost/x"}, "init")
    assert result.exit_code == 2 and "unsupported database backend" in result.stderr


def test_newer_schema_version_is_refused_and_untouched(stores: Stores) -> None:
    with stores.engine(stores.market).begin() as connection:
        connection.execute(text("UPDATE alembic_version_market SET version_num = '3.0.0'"))
    for command in (["init"], ["db", "upgrade"], ["db", "info"], ["db", "check"]):
        result = invoke(stores.settings, *command)
        err = result.stderr
        assert result.exit_code == 4, (command, err)
        assert "'3.0.0'" in err and "unknown to this release" in err and "hint:" in err
    with stores.engine(stores.market).connect() as connection:
        version = connection.execute(text("SELECT version_num FROM alembic_version_market"))
        assert version.scalar_one() == "3.0.0"


def test_check_finds_orphan_rows(stores: Stores) -> None:
    """Rows written while foreign keys were not enforced are reported by `db check`."""
    engine = stores.engine(stores.app)
    sqlite = engine.dialect.name == "sqlite"
    raw = engine.raw_connection()  # outside SQLAlchemy's transaction handling
    try:
        cursor = raw.cursor()
        if sqlite:  # only takes effect outside a transaction
            cursor.execute("PRAGMA foreign_keys = OFF")
        else:  # superuser: skip FK triggers, as a replication tool may do
            cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            "INSERT INTO memory_fragments (user_id, fragment_type, content, importance, "
            "created_at, updated_at) VALUES (424242, 'fact', 'orphan', 0.5, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        )
        raw.commit()
    finally:
        raw.invalidate()  # never hand this connection back to the pool
    engine.dispose()
    report = invoke_json(stores.settings, "db", "check", "--json", code=1)
    failed = [r for r in report["results"] if not r["ok"]]
    assert [(r["store"], r["check"]) for r in failed] == [("app", "foreign_keys")], failed
    assert "memory_fragments" in failed[0]["detail"]
