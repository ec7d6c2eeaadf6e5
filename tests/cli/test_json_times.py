"""Every datetime in ``--json`` output is ISO-8601 with ``T`` and a UTC offset."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from cryptotrading.stores import Stores
from tests.helpers import invoke, settings_env

DATE_LIKE = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)$")
PASSWORD = "Sup3r-secret-pass!"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_json_datetimes_have_t_and_offset(stores: Stores) -> None:
    env = settings_env(stores.settings)
    commands: list[tuple[list[str], str | None]] = [
        (["users", "add", "alice", "--email", "a@example.com"], f"{PASSWORD}\n{PASSWORD}\n"),
        (["users", "list"], None),
        (["users", "show", "alice"], None),
        (["orders", "submit", "--user", "alice", "--symbol", "BTC/USDT", "--side", "buy",
          "--amount", "1"], None),
        (["orders", "list"], None),
        (["decisions", "insight", "--type", "entry", "--recommendation", "buy",
          "--confidence", "0.6", "--symbol", "BTC/USDT"], None),
        (["agents", "register", "a1", "--type", "analyst"], None),
        (["agents", "list"], None),
        (["health"], None),
        (["replicate", "status"], None),
    ]  # fmt: skip
    seen = 0
    for args, stdin in commands:
        result = invoke(env, *args, "--json", input=stdin)
        assert result.exit_code in (0, 1), (args, result.output)
        for text in _strings(json.loads(result.stdout)):
            if DATE_LIKE.match(text):
                seen += 1
                assert ISO.match(text), (args, text)
    assert seen >= 10
