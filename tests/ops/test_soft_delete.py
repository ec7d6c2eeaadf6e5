"""Soft deletes: who deleted and when, restore, purge past a retention; the library's
reads skip deleted rows; the change log and the replica follow restores and purges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update

from cryptotrading import agents
from cryptotrading.db.actor import acting_as, process_user
from cryptotrading.db.session import unit_of_work
from cryptotrading.errors import AuthenticationError, NotFoundError, ValidationError
from cryptotrading.intelligence.decisions import delete_decision, list_decisions
from cryptotrading.models import (
    A2AAgent,
    A2AMessage,
    ApiCredential,
    ChangeLog,
    MemoryFragment,
    MonitoringEvent,
    TradingDecision,
    TradingOrder,
    User,
)
from cryptotrading.ops import replication, scheduler, soft_delete
from cryptotrading.security.users import UserService
from cryptotrading.services import memory
from cryptotrading.stores import Stores
from cryptotrading.trading.orders import submit_order
from tests.helpers import SettingsFactory, count_rows, invoke, invoke_json, make_agent, make_user
from tests.ops.helpers import assert_in_step

PASSWORD = "correct horse battery staple"
LONG_AGO = datetime.now(UTC) - timedelta(days=400)


def _users(engine: Engine) -> UserService:
    return UserService(engine)


def _mark(engine: Engine, table: Any, row_id: int, when: datetime, by: str = "old-admin") -> None:
    """Back-date a deletion (plain SQL, as an old deletion would look)."""
    with engine.begin() as connection:
        connection.execute(
            update(table).where(table.id == row_id).values(deleted_at=when, deleted_by=by)
        )


def _decision(engine: Engine, user_id: int | None = None) -> int:
    with unit_of_work(engine) as session:
        decision = TradingDecision(symbol="BTC/USDT", action="buy", confidence=0.7, user_id=user_id)
        session.add(decision)
        session.flush()
        return decision.id


# -- who and when --------------------------------------------------------------------


def test_deletions_record_who_and_when(stores: Stores) -> None:
    engine = stores.engine(stores.app)
    users = _users(engine)
    users.create("alice", "alice@example.com", PASSWORD)
    with acting_as("ops-admin"):
        users.deactivate("alice")
    make_agent(engine, "agent-x")
    agents.deactivate_agent(engine, "agent-x")  # outside acting_as: the OS user
    decision = _decision(engine)
    with unit_of_work(engine) as session:  # code that sets deleted_at directly
        session.get(TradingDecision, decision).deleted_at = datetime.now(UTC)  # type: ignore[union-attr]
    rows = {(r.table, r.label): r for r in soft_delete.list_deleted(stores)}
    assert rows["users", "alice"].deleted_by == "ops-admin"
    assert rows["a2a_agents", "agent-x"].deleted_by == process_user()
    assert rows["trading_decisions", "BTC/USDT"].deleted_by == process_user()
    assert all(r.deleted_at for r in rows.values())

    agents.register_agent(engine, "agent-x", "analyst")  # revived by the domain
    with engine.connect() as connection:
        revived = connection.execute(
            select(A2AAgent.deleted_at, A2AAgent.deleted_by).where(A2AAgent.agent_id == "agent-x")
        ).one()
    assert tuple(revived) == (None, None)
    with pytest.raises(ValueError), acting_as("  "):
        pass


# -- the library's reads -------------------------------------------------------------


def test_library_reads_skip_deleted_rows_until_restored(stores: Stores) -> None:
    engine = stores.engine(stores.app)
    users = _users(engine)
    alice = users.create("alice", "alice@example.com", PASSWORD)
    make_agent(engine, "sender")
    make_agent(engine, "receiver")
    agents.connect_agents(engine, "sender", "receiver")
    fragment = memory.remember_fragment(engine, alice.id, "preference", "likes BTC")
    decision = _decision(engine, alice.id)

    users.deactivate("alice")
    agents.deactivate_agent(engine, "receiver")
    memory.forget_fragment(engine, fragment.id)
    delete_decision(engine, decision)

    assert [u.username for u in users.list()] == []
    with pytest.raises(AuthenticationError):
        users.authenticate("alice", PASSWORD)
    assert [a.agent_id for a in agents.list_agents(engine)] == ["sender"]
    with pytest.raises(NotFoundError, match="deactivated"):
        agents.send_message(engine, "sender", "receiver", {"n": 1})
    assert list_decisions(engine) == []
    with pytest.raises(NotFoundError):  # the user is gone, and so are its fragments
        memory.fragments(engine, alice.id)

    with acting_as("ops-admin"):
        for table, row_id in (
            ("users", alice.id),
            ("a2a_agents", _agent_row(engine, "receiver")),
            ("memory_fragments", fragment.id),
            ("trading_decisions", decision),
        ):
            soft_delete.restore_deleted(stores, table, row_id)

    assert [u.username for u in users.list()] == ["alice"]
    assert users.authenticate("alice", PASSWORD).username == "alice"
    assert {a.agent_id for a in agents.list_agents(engine)} == {"sender", "receiver"}
    agents.send_message(engine, "sender", "receiver", {"n": 1})
    assert [d.id for d in list_decisions(engine)] == [decision]
    assert [f.content for f in memory.fragments(engine, alice.id)] == ["likes BTC"]
    with engine.connect() as connection:
        events = (
            connection.execute(
                select(MonitoringEvent.details).where(MonitoringEvent.event_type == "row_restored")
            )
            .scalars()
            .all()
        )
    assert {(e["table"], e["by"]) for e in events} == {
        ("users", "ops-admin"),
        ("a2a_agents", "ops-admin"),
        ("memory_fragments", "ops-admin"),
        ("trading_decisions", "ops-admin"),
    }


def test_orders_refuse_a_deleted_user_or_decision(stores: Stores) -> None:
    engine = stores.engine(stores.app)
    users = _users(engine)
    alice = users.create("alice", "alice@example.com", PASSWORD)
    decision = _decision(engine, alice.id)
    delete_decision(engine, decision)
    order = {"symbol": "BTC/USDT", "side": "buy", "order_type": "market", "amount": "1"}
    with pytest.raises(NotFoundError):
        submit_order(engine, user_id=alice.id, decision_id=decision, **order)
    users.deactivate("alice")
    with pytest.raises(NotFoundError):
        submit_order(engine, user_id=alice.id, **order)


def _agent_row(engine: Engine, agent_id: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(A2AAgent.id).where(A2AAgent.agent_id == agent_id)
            ).scalar_one()
        )


# -- restore refusals ------------------------------------------------------------------


def test_restore_refusals_write_nothing(stores: Stores) -> None:
    engine = stores.engine(stores.app)
    alice = make_user(engine, "alice")
    with unit_of_work(engine) as session:
        session.add(
            ApiCredential(
                user_id=alice, service_name="binance", api_key_encrypted=b"", is_active=False
            )
        )
    with engine.begin() as connection:
        credential = connection.execute(select(ApiCredential.id)).scalar_one()
    _mark(engine, ApiCredential, credential, LONG_AGO)
    fragment = memory.remember_fragment(engine, alice, "fact", "x")
    memory.forget_fragment(engine, fragment.id)
    _mark(engine, User, alice, LONG_AGO)
    before = count_rows(engine, MonitoringEvent)

    with pytest.raises(ValidationError, match="not a table with soft deletes"):
        soft_delete.restore_deleted(stores, "trading_orders", 1)
    with pytest.raises(NotFoundError, match="has no row 999"):
        soft_delete.restore_deleted(stores, "users", 999)
    with pytest.raises(ValidationError, match="cannot be restored"):
        soft_delete.restore_deleted(stores, "api_credentials", credential)
    with pytest.raises(ValidationError, match=f"belongs to users {alice}, which is deleted"):
        soft_delete.restore_deleted(stores, "memory_fragments", fragment.id)
    soft_delete.restore_deleted(stores, "users", alice)
    with pytest.raises(ValidationError, match="is not deleted"):
        soft_delete.restore_deleted(stores, "users", alice)
    soft_delete.restore_deleted(stores, "memory_fragments", fragment.id)  # parent is back
    assert count_rows(engine, MonitoringEvent) == before + 2


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            [
                "users; DROP TABLE users",
                "Users",
                "users ",
                "\x00users",
                "sqlite_master",
                "change_log",
            ]
        ),
    )
)
def test_hostile_table_names_are_refused(stores: Stores, name: str) -> None:
    if name in soft_delete.soft_delete_tables():
        return
    with pytest.raises(ValidationError):
        soft_delete.restore_deleted(stores, name, 1)
    with pytest.raises(ValidationError):
        soft_delete.list_deleted(stores, name)
    with pytest.raises(ValidationError):
        soft_delete.purge_deleted(stores, timedelta(days=1), tables=[name])
    assert count_rows(stores.engine(stores.app), "users") == 0


# -- purge -----------------------------------------------------------------------------


def test_purge_removes_rows_past_the_age_and_keeps_referenced_ones(stores: Stores) -> None:
    engine = stores.engine(stores.app)
    old, recent, trader = (make_user(engine, name) for name in ("old", "recent", "trader"))
    fragment = memory.remember_fragment(engine, old, "fact", "x")
    _mark(engine, User, old, LONG_AGO)
    _mark(engine, User, recent, datetime.now(UTC) - timedelta(days=1))
    _mark(engine, User, trader, LONG_AGO)
    with unit_of_work(engine) as session:  # an order keeps its user (audit trail)
        session.add(
            TradingOrder(
                order_id="o-1", user_id=trader, symbol="BTC/USDT", exchange="binance",
                side="buy", order_type="market", status="filled", amount=1,
            )
        )  # fmt: skip
    make_agent(engine, "a")
    make_agent(engine, "b")
    agents.connect_agents(engine, "a", "b")
    agents.send_message(engine, "a", "b", {"n": 1})
    agents.deactivate_agent(engine, "b")
    _mark(engine, A2AAgent, _agent_row(engine, "b"), LONG_AGO)
    # a deleted fragment of a deleted user: children go first, then the user
    _mark(engine, MemoryFragment, fragment.id, LONG_AGO)

    report = soft_delete.purge_deleted(stores, timedelta(days=365))
    assert report.purged["users"] == 1 and report.purged["memory_fragments"] == 1
    assert report.purged["a2a_agents"] == 1
    assert report.kept == {"users": 1}
    assert report.kept_by == {"users": ["trading_orders.user_id"]}
    with engine.connect() as connection:
        names = set(connection.execute(select(User.username)).scalars())
        purged = (
            connection.execute(
                select(MonitoringEvent.details).where(MonitoringEvent.event_type == "rows_purged")
            )
            .scalars()
            .all()
        )
    assert names == {"recent", "trader"}
    assert count_rows(engine, A2AMessage) == 0  # the agent's messages went with it
    assert {e["table"]: e["rows"] for e in purged} == {
        "users": 1,
        "memory_fragments": 1,
        "a2a_agents": 1,
    }
    if engine.dialect.name == "postgresql":
        assert set(report.vacuumed) == {"users", "memory_fragments", "a2a_agents"}
    assert soft_delete.purge_deleted(stores, timedelta(days=365)).rows == 0
    with pytest.raises(ValidationError):
        soft_delete.purge_deleted(stores, timedelta(0))


def test_purge_follows_the_setting_in_the_retention_job(make_settings: SettingsFactory) -> None:
    with Stores(make_settings("three", retention_deleted_days=30)) as stores:
        engine = stores.engine(stores.app)
        gone, kept = make_user(engine, "gone"), make_user(engine, "kept")
        _mark(engine, User, gone, LONG_AGO)
        _mark(engine, User, kept, datetime.now(UTC) - timedelta(days=2))
        [result] = scheduler.run_due(stores, only=["retention"])
        assert result.status == "ok", result
        assert result.detail["purged_deleted"]["purged"]["users"] == 1
        assert soft_delete.purge(stores).rows == 0  # the setting is the default age
        with engine.connect() as connection:
            assert set(connection.execute(select(User.username)).scalars()) == {"kept"}


def test_purge_without_an_age_is_refused(stores: Stores) -> None:
    with pytest.raises(ValidationError, match="no age given"):
        soft_delete.purge(stores)
    with pytest.raises(ValidationError, match="invalid age"):
        soft_delete.purge(stores, "soon")


# -- change log and replica --------------------------------------------------------------


def test_change_log_and_replica_follow_restore_and_purge(stores: Stores) -> None:
    engine = stores.engine(stores.app)
    users = _users(engine)
    alice = users.create("alice", "alice@example.com", PASSWORD).id
    bob = users.create("bob", "bob@example.com", PASSWORD).id
    users.deactivate("alice")
    users.deactivate("bob")
    replication.replicate_once(stores)
    assert_in_step(stores, "users")

    soft_delete.restore_deleted(stores, "users", alice)
    _mark(engine, User, bob, LONG_AGO)
    soft_delete.purge_deleted(stores, timedelta(days=30), tables=["users"])
    with engine.connect() as connection:
        logged = connection.execute(
            select(ChangeLog.op, ChangeLog.row_key)
            .where(ChangeLog.table_name == "users")
            .order_by(ChangeLog.seq)
        ).all()
    ops = [op for op, _ in logged]
    assert ops[-1] == "D" and ops.count("D") == 1  # the purge
    assert ops.count("U") >= 4  # two deactivations, the restore, the back-dating
    replication.replicate_once(stores)
    assert_in_step(stores, "users", "monitoring_events")
    with stores.engine("replica").connect() as connection:
        rows = connection.execute(select(User.username, User.deleted_at, User.is_active)).all()
    assert [(name, deleted, active) for name, deleted, active in rows] == [("alice", None, True)]


# -- the commands ----------------------------------------------------------------------


def test_cli_list_restore_purge(stores: Stores) -> None:
    engine = stores.engine(stores.app)
    users = _users(engine)
    alice = users.create("alice", "alice@example.com", PASSWORD).id
    users.deactivate("alice")
    settings_ = stores.settings
    listed = invoke_json(settings_, "db", "list-deleted", "users", "--json")
    assert [(r["table"], r["id"], r["label"]) for r in listed] == [("users", alice, "alice")]
    restored = invoke_json(settings_, "db", "restore-deleted", "users", str(alice), "--json")
    assert restored["id"] == alice and restored["deleted_by"] == process_user()
    again = invoke(settings_, "db", "restore-deleted", "users", str(alice))
    assert again.exit_code != 0 and "is not deleted" in again.output
    assert "Traceback" not in again.output
    bad = invoke(settings_, "db", "restore-deleted", "orders'--", "1")
    assert bad.exit_code != 0 and "not a table with soft deletes" in bad.output
    _mark(engine, User, alice, LONG_AGO)
    purged = invoke_json(settings_, "db", "purge-deleted", "--older-than", "30d", "--json")
    assert purged["purged"]["users"] == 1 and purged["rows"] == 1
    refused = invoke(settings_, "db", "purge-deleted")
    assert refused.exit_code != 0 and "no age given" in refused.output
