"""Schema 2.4.0's queue data step and its downgrade, with data, on both backends.

Upgrade: a message ``delivered`` before 2.4.0 had no lease -- it gets attempts = 1 and a
lease that ends at its ``delivered_at`` (passed), so the next claim returns it to its
consumer; one without ``delivered_at`` has no lease at all and is swept the same way.
Downgrade 2.4.0 -> 2.3.0 keeps every message (the new columns go) and 2.3.0 -> 2.4.0
brings the queue back to work.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine, inspect

from cryptotrading import agents
from cryptotrading.common.clock import utcnow
from cryptotrading.db.types import UTCDateTime
from cryptotrading.ops import lifecycle
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory

NEW_COLUMNS = {
    "group_key",
    "idempotency_key",
    "attempts",
    "max_attempts",
    "not_before",
    "expires_at",
    "lease_expires_at",
    "receipt",
    "last_error",
    "dead_lettered_at",
}
AGENTS_2_3 = sa.table(
    "a2a_agents",
    sa.column("agent_id", sa.String),
    sa.column("agent_type", sa.String),
    sa.column("status", sa.String),
)
MESSAGES_2_3 = sa.table(
    "a2a_messages",
    sa.column("message_id", sa.String),
    sa.column("sender_id", sa.String),
    sa.column("receiver_id", sa.String),
    sa.column("message_type", sa.String),
    sa.column("payload", sa.JSON),
    sa.column("status", sa.String),
    sa.column("priority", sa.Integer),
    sa.column("delivered_at", UTCDateTime()),
    sa.column("processed_at", UTCDateTime()),
)


def _old_message(message_id: str, status: str, **extra: Any) -> dict[str, Any]:
    values = {"delivered_at": None, "processed_at": None, **extra}
    return {
        "message_id": message_id,
        "sender_id": "a",
        "receiver_id": "b",
        "message_type": "message",
        "payload": {"id": message_id},
        "status": status,
        "priority": 0,
        **values,
    }


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("a2a_messages")}


def _statuses(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        found = connection.execute(sa.text("SELECT message_id, status FROM a2a_messages"))
        return {str(m): str(s) for m, s in found}


def test_upgrade_requeues_old_deliveries_and_the_downgrade_keeps_messages(
    make_settings: SettingsFactory,
) -> None:
    with Stores(make_settings("three", migrated=False)) as stores:
        lifecycle.migrate(stores, "2.3.0", create=True)
        engine = stores.engine(stores.app)
        assert not _columns(engine) & NEW_COLUMNS
        hour_ago = utcnow() - timedelta(hours=1)
        with engine.begin() as connection:
            connection.execute(
                sa.insert(AGENTS_2_3),
                [{"agent_id": x, "agent_type": "t", "status": "active"} for x in "ab"],
            )
            connection.execute(
                sa.insert(MESSAGES_2_3),
                [
                    _old_message("pending", "pending"),
                    _old_message("delivered", "delivered", delivered_at=hour_ago),
                    _old_message("delivered-no-time", "delivered"),
                    _old_message("done", "processed", delivered_at=hour_ago, processed_at=hour_ago),
                ],
            )

        lifecycle.migrate(stores, "2.4.0")
        assert _columns(engine) >= NEW_COLUMNS
        upgraded = {m: agents.get_message(engine, m) for m in _statuses(engine)}
        assert {m: x.attempts for m, x in upgraded.items()} == {
            "pending": 0,
            "delivered": 1,
            "delivered-no-time": 1,
            "done": 1,
        }
        assert {x.max_attempts for x in upgraded.values()} == {5}
        assert upgraded["delivered"].lease_expires_at == hour_ago  # its lease has passed
        assert upgraded["delivered-no-time"].lease_expires_at is None
        claimed = {m.message_id: m for m in agents.claim_messages(engine, "b")}
        assert set(claimed) == {"pending", "delivered", "delivered-no-time"}
        assert claimed["delivered"].attempts == 2 and claimed["pending"].attempts == 1
        # leave a message in each state the downgrade must keep
        agents.acknowledge(engine, "delivered", claimed["delivered"].receipt)
        agents.nack(engine, "delivered-no-time", claimed["delivered-no-time"].receipt, reason="x")
        policy = agents.QueuePolicy(open_messaging=True)
        dead = agents.send_message(engine, "a", "b", {"n": 1}, max_attempts=1, policy=policy)
        (got,) = agents.claim_messages(engine, "b", limit=1)
        agents.nack(engine, dead.message_id, got.receipt, reason="poison")
        before = _statuses(engine)
        assert before == {
            "pending": "delivered",
            "delivered": "processed",
            "delivered-no-time": "pending",
            "done": "processed",
            dead.message_id: "dead",
        }

        lifecycle.rollback(stores, "2.3.0")
        assert not _columns(engine) & NEW_COLUMNS
        assert not inspect(engine).has_table("a2a_processed_keys")
        assert _statuses(engine) == before  # every message kept, as it was

        lifecycle.migrate(stores, "2.4.0")
        again = {m.message_id: m for m in agents.claim_messages(engine, "b")}
        # the delivery in flight at the downgrade lost its lease: it is back; the nacked
        # one lost its backoff; the dead letter stays dead and can be re-driven
        assert set(again) == {"pending", "delivered-no-time"}
        assert again["pending"].attempts == 2 and again["delivered-no-time"].attempts == 1
        assert [m.message_id for m in agents.list_dead_letters(engine)] == [dead.message_id]
        assert agents.redrive(engine, [dead.message_id]) == 1
        assert [m.message_id for m in agents.claim_messages(engine, "b")] == [dead.message_id]
