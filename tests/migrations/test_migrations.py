"""Migrations: head matches the models; 1.0.0 -> head -> 1.0.0 -> head keeps rows;
a failed or impossible migration changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import inspect, select, text

from cryptotrading import migrations
from cryptotrading.db import unit_of_work
from cryptotrading.errors import SchemaVersionError, StoreError
from cryptotrading.migrations.environment import version_table
from cryptotrading.models import (
    SCHEMA_VERSIONS,
    A2AAgent,
    SchemaVersion,
    TimeSeries,
    TradingDecision,
    TradingOrder,
    User,
    lineage_tables,
)
from cryptotrading.ops import check, lifecycle
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory


def test_history_reproduces_the_spec() -> None:
    for lineage in ("app", "market"):
        assert migrations.known_revisions(lineage) == list(SCHEMA_VERSIONS)


@pytest.mark.parametrize("layout", ["three", "two", "single"])
def test_head_matches_the_models(make_settings: SettingsFactory, layout: str) -> None:
    with Stores(make_settings(layout, migrated=False)) as stores:
        lifecycle.initialize(stores)
        for store in stores:
            with stores.engine(store).connect() as connection:
                assert check.drift(connection, store.lineages) == []
        assert all(result.ok for result in check.check_all(stores))


def _seed_core_rows(stores: Stores) -> None:
    """Rows in tables that exist at 1.0.0, written with the 1.0.0 schema."""
    with stores.engine(stores.app).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (username, email, password_hash, is_active, role, "
                "created_at, updated_at) VALUES ('alice', 'a@example.com', 'x', true, 'trader', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO trading_orders (order_id, user_id, symbol, exchange, side, "
                "order_type, status, amount, filled_amount, fee, created_at, updated_at) "
                "VALUES ('o-1', (SELECT id FROM users WHERE username = 'alice'), 'BTC/USDT', "
                "'binance', 'buy', 'limit', 'new', '0.123456789012345678', '0', '0', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    with stores.engine(stores.market).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO time_series (symbol, frequency, timestamp, exchange, open, high, "
                "low, close, volume, ingested_at) VALUES ('BTC/USDT', '1h', 1606780800000, "
                "'binance', 19695.87, 19720.0, 19479.8, 19565.47, 4570.361518, 0)"
            )
        )


def _assert_core_rows(stores: Stores) -> None:
    with unit_of_work(stores.engine(stores.app)) as session:
        # columns of 1.0.0 only: the model has columns of later versions (deleted_by)
        user = session.execute(select(User.username, User.email)).one()
        assert tuple(user) == ("alice", "a@example.com")
        order = session.scalars(select(TradingOrder.amount)).one()
        assert order == Decimal("0.123456789012345678")
    with unit_of_work(stores.engine(stores.market)) as session:
        candle = session.scalars(select(TimeSeries)).one()
        assert (candle.timestamp, candle.close) == (1606780800000, 19565.47)


def _versions(stores: Stores) -> list[str]:
    with unit_of_work(stores.engine(stores.app)) as session:
        return list(session.scalars(select(SchemaVersion.version).order_by(SchemaVersion.id)))


@pytest.mark.parametrize("layout", ["three", "single"])
def test_upgrade_downgrade_round_trip_keeps_rows(
    make_settings: SettingsFactory, layout: str
) -> None:
    with Stores(make_settings(layout, migrated=False)) as stores:
        steps = lifecycle.migrate(stores, "1.0.0", create=True)
        assert {step.after for step in steps} == {"1.0.0"}
        app_engine = stores.engine(stores.app)
        assert not inspect(app_engine).has_table("ai_insights")
        assert "decision_id" not in {
            c["name"] for c in inspect(app_engine).get_columns("trading_orders")
        }
        _seed_core_rows(stores)

        lifecycle.migrate(stores, "head")
        _assert_core_rows(stores)
        assert _versions(stores) == list(SCHEMA_VERSIONS)
        with unit_of_work(app_engine) as session:  # use the 1.5.0 column and tables
            decision = TradingDecision(symbol="BTC/USDT", action="buy", confidence=0.7)
            session.add(decision)
            session.flush()
            order = session.scalars(select(TradingOrder)).one()
            order.decision_id = decision.id
            session.add(A2AAgent(agent_id="agent-1", agent_type="analyst"))

        lifecycle.rollback(stores, "1.0.0")
        _assert_core_rows(stores)
        assert _versions(stores) == ["1.0.0"]
        assert not inspect(app_engine).has_table("trading_decisions")
        with app_engine.connect() as connection:
            agents = connection.execute(text("SELECT agent_id FROM a2a_agents")).all()
        assert agents == [("agent-1",)]

        lifecycle.migrate(stores, "head")
        _assert_core_rows(stores)
        assert all(result.ok for result in check.check_all(stores))


def test_failed_migration_changes_nothing(make_settings: SettingsFactory) -> None:
    """A 1.5.0 upgrade that cannot complete rolls back entirely (transactional DDL)."""
    with Stores(make_settings("two", migrated=False)) as stores:
        lifecycle.migrate(stores, "1.0.0", create=True)
        engine = stores.engine(stores.app)
        with engine.begin() as connection:  # a squatter blocks one table of 1.5.0
            connection.execute(text("CREATE TABLE ml_predictions (squatter INTEGER)"))
        tables_before = set(inspect(engine).get_table_names())

        with pytest.raises(StoreError):
            lifecycle.migrate(stores, "head", only="app")

        assert migrations.current(engine, "app") == "1.0.0"
        assert set(inspect(engine).get_table_names()) == tables_before
        assert _versions(stores) == ["1.0.0"]


def test_unknown_newer_version_is_refused(stores: Stores) -> None:
    engine = stores.engine(stores.app)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {version_table('app')} SET version_num = '9.0.0'"))
    with pytest.raises(SchemaVersionError, match=r"9\.0\.0.*unknown to this release"):
        lifecycle.migrate(stores, "head")
    with pytest.raises(SchemaVersionError):
        check.check_all(stores)
    with engine.connect() as connection:
        version = connection.execute(text(f"SELECT version_num FROM {version_table('app')}"))
        assert version.scalar_one() == "9.0.0"
        assert inspect(connection).has_table("ai_insights")


def test_downgrade_to_base_and_back(make_settings: SettingsFactory) -> None:
    with Stores(make_settings("two", migrated=False)) as stores:
        lifecycle.initialize(stores)
        lifecycle.rollback(stores, "base")
        for store in stores:
            names = set(inspect(stores.engine(store)).get_table_names())
            owned = {t.name for lineage in store.lineages for t in lineage_tables(lineage)}
            assert not names & owned
        lifecycle.initialize(stores)
        assert {step.after for step in lifecycle.versions(stores)} == {SCHEMA_VERSIONS[-1]}


def test_utc_datetimes_round_trip(stores: Stores) -> None:
    moment = datetime(2021, 3, 6, 2, 30, 15, 123456, tzinfo=UTC)
    with unit_of_work(stores.engine(stores.app)) as session:
        session.add(User(username="bob", email="b@x", password_hash="h", last_login_at=moment))
    with unit_of_work(stores.engine(stores.app)) as session:
        loaded = session.scalars(select(User.last_login_at)).one()
    assert loaded == moment and loaded.tzinfo is not None
