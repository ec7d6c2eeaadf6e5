"""``cryptotrading orders`` and ``portfolio`` from the command line, both backends."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptotrading.stores import Stores
from tests.helpers import (
    SettingsFactory,
    insert_candle,
    invoke,
    invoke_json,
    make_user,
    settings_env,
)


def test_orders_and_portfolio_cli(make_settings: SettingsFactory) -> None:
    settings = make_settings("three")
    env = settings_env(settings)
    with Stores(settings) as stores:
        make_user(stores.engine(stores.app), "carol")
        insert_candle(
            stores.engine(stores.market),
            "BTC/USDT",
            datetime(2021, 1, 5, tzinfo=UTC),
            close=32000.5,
        )
    submit = (
        "orders",
        "submit",
        "--user",
        "carol",
        "--symbol",
        "BTC/USDT",
        "--side",
        "buy",
        "--type",
        "limit",
        "--amount",
        "0.3",
        "--price",
        "31000",
        "--client-id",
        "c-1",
        "--json",
    )
    order = invoke_json(env, *submit)
    assert order["created"] and order["status"] == "new" and order["amount"] == "0.3"
    again = invoke_json(env, *submit)  # a retry: the client id returns the first order
    assert not again["created"] and again["order_id"] == order["order_id"]
    oid = order["order_id"]
    assert invoke_json(env, "orders", "accept", oid, "--json")["status"] == "open"
    filled = invoke_json(
        env,
        "orders",
        "fill",
        oid,
        "--price",
        "30990.5",
        "--amount",
        "0.1",
        "--fee",
        "0.5",
        "--at",
        "2021-01-04T10:00:00Z",
        "--json",
    )
    assert filled["order"]["status"] == "partially_filled"
    assert filled["position"]["quantity"] == "0.1"
    assert filled["order"]["fills"][0] == {
        "price": "30990.5",
        "amount": "0.1",
        "fee": "0.5",
        "time": "2021-01-04T10:00:00+00:00",
    }
    # illegal: accept again -> clear error, exit code 5, nothing changed
    bad = invoke(env, "orders", "accept", oid, code=5)
    assert "error: order" in bad.output and "cannot accept" in bad.output
    assert "hint:" in bad.output
    over = invoke(env, "orders", "fill", oid, "--price", "31000", "--amount", "0.25", code=5)
    assert "would overfill" in over.output
    assert invoke_json(env, "orders", "show", oid, "--json")["filled_amount"] == "0.1"
    assert invoke_json(env, "orders", "cancel", oid, "--json")["status"] == "cancelled"
    listed = invoke_json(env, "orders", "list", "--user", "carol", "--json")
    assert [o["order_id"] for o in listed] == [oid]
    human = invoke(env, "orders", "list", "--status", "cancelled", code=0)
    assert "cancelled" in human.output

    summary = invoke_json(
        env, "portfolio", "summary", "--user", "carol", "--starting-cash", "10000", "--json"
    )
    assert summary["unrealized_pnl"] == "101"  # 0.1 * (32000.5 - 30990.5)
    assert summary["equity"] == "10100.5"  # 10000 + 101 - 0.5
    assert summary["positions"][0]["market_value"] == "3200.05"
    positions = invoke_json(env, "portfolio", "positions", "--user", "carol", "--json")
    assert positions[0]["last_price"] == "32000.5"
    assert "equity" in invoke(env, "portfolio", "summary", "--user", "carol", code=0).output
    missing = invoke(env, "portfolio", "summary", "--user", "nobody", code=6)
    assert "user 'nobody' does not exist" in missing.output
    bad_time = invoke(
        env, "portfolio", "summary", "--user", "carol", "--as-of", "yesterday", code=5
    )
    assert "not an ISO-8601 time" in bad_time.output
