"""Change capture: every replicated table has its triggers at head (both backends),
a replica has none, and the log records exactly what plain SQL did."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from cryptotrading import migrations
from cryptotrading.migrations import capture
from cryptotrading.models import APP_LINEAGE, MARKET_LINEAGE
from cryptotrading.ops import replication
from cryptotrading.stores import Stores
from tests.helpers import make_user


def _triggers(engine: Engine) -> dict[str, set[str]]:
    with engine.connect() as connection:
        return capture.installed(connection)


def _assert_captured(engine: Engine, lineage: str) -> None:
    found = _triggers(engine)
    expected = {"i", "u", "d"} | ({"t"} if engine.dialect.name == "postgresql" else set())
    for table in capture.captured_tables(lineage):
        assert found.get(table) == expected, table
    assert not set(found) - set(capture.captured_tables(lineage)) - _partitions(engine)


def _partitions(engine: Engine) -> set[str]:
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as connection:
        return set(
            connection.exec_driver_sql(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            ).scalars()
        )


def test_every_replicated_table_is_captured_at_head(stores: Stores) -> None:
    _assert_captured(stores.engine("app"), APP_LINEAGE)
    _assert_captured(stores.engine("market"), MARKET_LINEAGE)
    replication.replicate_once(stores)
    assert _triggers(stores.engine("replica")) == {}  # a replica is nobody's source


def test_triggers_come_back_after_every_migration(stores: Stores) -> None:
    """SQLite batch migrations rebuild tables without their triggers; a downgrade
    below 2.2.0 removes capture with its tables, an upgrade brings both back."""
    app = stores.engine("app")
    migrations.downgrade(app, APP_LINEAGE, "2.0.0")
    assert _triggers(app) == {}
    migrations.upgrade(app, APP_LINEAGE, "2.1.0")
    assert _triggers(app) == {}
    migrations.upgrade(app, APP_LINEAGE)
    _assert_captured(app, APP_LINEAGE)


def test_plain_sql_is_logged_with_keys_and_operations(stores: Stores) -> None:
    app = stores.engine("app")
    user = make_user(app, "zoe")
    with app.begin() as connection:
        connection.execute(
            text("UPDATE users SET email = 'z@new.example' WHERE id = :id"), {"id": user}
        )
        connection.execute(text("UPDATE users SET id = 99 WHERE id = :id"), {"id": user})
        connection.execute(text("DELETE FROM users WHERE id = 99"))
    with app.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT op, row_key FROM change_log WHERE table_name = 'users' ORDER BY seq"
        ).all()
    keys = [(op, json.loads(key)) for op, key in rows]
    if app.dialect.name == "sqlite":  # row triggers: a key move is a delete and an upsert
        assert keys == [("I", [user]), ("U", [user]), ("D", [user]), ("U", [99]), ("D", [99])]
    else:  # statement triggers: every key a statement touched
        assert keys[:2] == [("I", [user]), ("U", [user])]
        assert sorted(k for _, k in keys[2:4]) == [[user], [99]]
        assert keys[4:] == [("D", [99])]


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "update", "delete"]),
        st.integers(1, 6),
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(2**62), 2**62).map(float),
            st.sampled_from([5e-324, -0.0, 1.7976931348623157e308, 0.1 + 0.2]),
        ),
    ),
    max_size=25,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS)
def test_replaying_the_log_rebuilds_the_table(
    stores: Stores, ops: list[tuple[str, int, float]]
) -> None:
    """Any sequence of plain-SQL changes: on SQLite the row images rebuild the table
    exactly (reals to the bit); on both backends the logged keys are the changed keys."""
    from cryptotrading.ops.pitr_sqlite import decode_value

    app = stores.engine("app")
    with app.begin() as connection:  # every example starts empty
        connection.execute(text("DELETE FROM system_metrics"))
        connection.execute(text("DELETE FROM change_log"))
    with app.begin() as connection:
        for op, key, value in ops:
            if op == "insert":
                connection.execute(
                    text(
                        "INSERT INTO system_metrics (id, metric_name, value, recorded_at)"
                        " VALUES (:k, 'm', :v, '2026-01-01') ON CONFLICT (id) DO NOTHING"
                    ),
                    {"k": key, "v": value},
                )
            elif op == "update":
                connection.execute(
                    text("UPDATE system_metrics SET value = :v WHERE id = :k"),
                    {"k": key, "v": value},
                )
            else:
                connection.execute(text("DELETE FROM system_metrics WHERE id = :k"), {"k": key})
        table = {
            row[0]: row[1]
            for row in connection.execute(text("SELECT id, value FROM system_metrics"))
        }
        log = connection.execute(
            text(
                "SELECT op, row_key, row_image FROM change_log"
                " WHERE table_name = 'system_metrics' ORDER BY seq"
            )
        ).all()
        affected = connection.execute(text("SELECT count(*) FROM system_metrics")).scalar()
    changed = {key for _op, key, _v in ops}
    logged = {json.loads(row_key)[0] for _, row_key, _ in log}
    assert set(table) <= logged <= changed
    assert affected == len(table)
    if app.dialect.name == "sqlite":
        rebuilt: dict[int, Any] = {}
        for op, row_key, image in log:
            key = json.loads(row_key)[0]
            if op == "D":
                rebuilt.pop(key, None)
            else:
                rebuilt[key] = decode_value(json.loads(image)["value"])
        assert {k: repr(v) for k, v in rebuilt.items()} == {k: repr(v) for k, v in table.items()}
