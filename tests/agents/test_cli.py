"""The `cryptotrading agents` commands on both backends."""


from __future__ import annotations

from cryptotrading.models.agents import A2AMessage
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, count_rows, invoke, invoke_json, settings_env


def test_agents_commands(make_settings: SettingsFactory) -> None:
    settings = make_settings("three")
    env = settings_env(settings)
    made = invoke_json(
        env, "services", "agents", "register", "bot-a", "--type", "trader", "-c", "trade", "--json"
    )
    assert made["agent_id"] == "bot-a" and made["capabilities"] == ["trade"]
    invoke(
        env,
        "services",
        "agents",
        "register",
        "bot-b",
        "--type",
        "analyst",
        "--config",
        '{"x": 1}',
        code=0,
    )
    listed = invoke_json(env, "services", "agents", "list", "--json")
    assert [a["agent_id"] for a in listed] == ["bot-a", "bot-b"]
    assert "bot-b" in invoke(env, "services", "agents", "list", code=0).stdout
    low = invoke_json(
        env, "services", "agents", "send", "bot-a", "bot-b", "--payload", '{"n": 1}', "--json"
    )
    high = invoke_json(
        env,
        "services",
        "agents",
        "send",
        "bot-a",
        "bot-b",
        "--payload",
        '{"n": 2}',
        "--priority",
        "3",
        "--type",
        "signal",
        "--json",
    )
    assert low["status"] == "pending"
    peek = invoke_json(env, "services", "agents", "inbox", "bot-b", "--peek", "--json")
    assert {m["message_id"] for m in peek} == {low["message_id"], high["message_id"]}
    claimed = invoke_json(env, "services", "agents", "inbox", "bot-b", "--limit", "1", "--json")
    assert [m["message_id"] for m in claimed] == [high["message_id"]]
    assert claimed[0]["status"] == "delivered"
    acked = invoke_json(env, "services", "agents", "inbox", "bot-b", "--ack", "--json")
    assert [(m["message_id"], m["status"]) for m in acked] == [(low["message_id"], "processed")]
    assert (
        "no pending messages" in invoke(env, "services", "agents", "inbox", "bot-b", code=0).stdout
    )
    done = invoke_json(env, "services", "agents", "ack", high["message_id"], "--json")
    assert done["status"] == "processed"


def test_agents_errors_exit_with_hint_and_write_nothing(make_settings: SettingsFactory) -> None:
    settings = make_settings("three")
    env = settings_env(settings)
    invoke(env, "services", "agents", "register", "bot-a", "--type", "trader", code=0)
    bad_json = invoke(
        env, "services", "agents", "send", "bot-a", "bot-a", "--payload", "{nope", code=5
    )
    assert "error: --payload is not valid JSON" in bad_json.output and "hint:" in bad_json.output
    unknown = invoke(env, "services", "agents", "send", "bot-a", "ghost", "--payload", "{}", code=6)
    assert "ghost" in unknown.output and "hint:" in unknown.output
    invoke(env, "services", "agents", "inbox", "ghost", code=6)
    invoke(env, "services", "agents", "register", "x", "--type", "t", "--config", "[1]", code=5)
    with Stores(settings) as stores:
        assert count_rows(stores.engine(stores.app), A2AMessage) == 0

