"""``cryptotrading users ...`` and ``cryptotrading vault ...`` through the real CLI app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cryptotrading.models.users import ApiCredential, User
from tests.helpers import SettingsFactory
from tests.security.helpers import CLI_API_KEY, CLI_SECRET, PASSWORD, Cli, add_alice


@pytest.fixture
def cli(make_settings: SettingsFactory) -> Cli:
    return Cli(make_settings("three"))


def test_users_commands(cli: Cli) -> None:
    add_alice(cli)
    [listed] = cli.json("users", "list")
    assert listed["username"] == "alice" and "password_hash" not in listed
    assert cli.json("users", "login", "alice", input=f"{PASSWORD}\n")["username"] == "alice"
    failed = cli("users", "login", "alice", input="wrong password!!\n", code=7)
    assert "invalid username or password" in failed.stderr
    issued = cli.json("users", "new-api-key", "alice")
    assert issued["api_key"].startswith(issued["prefix"])
    plain = cli("users", "new-api-key", "alice")  # replaces the first key
    new_key = plain.stdout.strip()
    assert "shown only now" in plain.stderr and new_key.startswith("ct_")
    cli("users", "login", "--api-key", input=issued["api_key"] + "\n", code=7)
    assert cli.json("users", "login", "--api-key", input=new_key + "\n")["username"] == "alice"
    assert cli.json("users", "show", "alice")["api_key_prefix"] == new_key[:11]
    cli("users", "revoke-api-key", "alice")
    cli("users", "login", "--api-key", input=new_key + "\n", code=7)
    assert cli.json("users", "deactivate", "alice")["is_active"] is False
    assert cli.json("users", "list") == []
    assert len(cli.json("users", "list", "--all")) == 1
    cli("users", "login", "alice", input=f"{PASSWORD}\n", code=7)


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (("alice", "--email", "a@example.com"), f"{PASSWORD}\nother password 123\n", 5, "differ"),
        (("alice", "--email", "a@example.com"), f"{PASSWORD}\n", 5, "stdin ended"),
        (("alice", "--email", "a@example.com"), "", 5, "stdin ended"),
        (("alice", "--email", "a@example.com"), "Zq9!x\nZq9!x\n", 5, "too short"),
        (("alice", "--email", "nope"), f"{PASSWORD}\n{PASSWORD}\n", 5, "invalid email"),
        (("bob", "--email", "bob@example.com"), f"{PASSWORD}\n{PASSWORD}\n", 5, "already taken"),
    ],
)
def test_users_add_bad_input_writes_nothing(
    cli: Cli, args: tuple[str, ...], stdin: str, code: int, message: str
) -> None:
    cli("users", "add", "bob", "--email", "bob@example.com", input=f"{PASSWORD}\n{PASSWORD}\n")
    result = cli("users", "add", *args, input=stdin, code=code)
    assert message in result.stderr and "hint:" in result.stderr
    assert PASSWORD not in result.output
    assert cli.count(User) == 1


def test_vault_commands(cli: Cli) -> None:
    add_alice(cli)
    added = cli.json(
        "vault", "add", "--user", "alice", "--service", "binance", "--label", "main",
        input=f"{CLI_API_KEY}\n{CLI_SECRET}\n",
    )  # fmt: skip
    assert added["api_key_masked"] == "********" + CLI_API_KEY[-4:] and added["has_secret"]
    cli(
        "vault", "add", "--user", "alice", "--service", "okx", "--passphrase",
        input="okx-key-0123456789\nokx-secret-0123456789\nokx pass phrase\n",
    )  # fmt: skip
    listed = cli("vault", "list")
    masked_json = cli("vault", "list", "--json").stdout
    shown = cli("vault", "show", "--user", "alice", "--service", "binance")
    shown_json = cli("vault", "show", "--user", "alice", "--service", "binance", "--json")
    for result_text in (listed.output, masked_json, shown.output, shown_json.output):
        assert CLI_API_KEY not in result_text and CLI_SECRET not in result_text
    assert [c["service"] for c in json.loads(masked_json)] == ["binance", "okx"]
    revealed = cli.json("vault", "show", "--user", "alice", "--service", "binance", "--reveal")
    assert (revealed["apiKey"], revealed["secret"]) == (CLI_API_KEY, CLI_SECRET)
    revealed_okx = cli("vault", "show", "--user", "alice", "--service", "okx", "--reveal")
    assert "password: okx pass phrase" in revealed_okx.stdout
    report = cli.json("vault", "rotate-key")
    assert report["credentials"] == 2 and len(report["retired_key_ids"]) == 1
    keys = cli.json("vault", "keys")
    assert [k["status"] for k in keys] == ["retired", "active"]
    assert keys[1]["kdf_params"] == {
        "time_cost": 3,
        "memory_cost_kib": 65536,
        "parallelism": 4,
        "version": 19,
    }
    assert cli.json("vault", "verify") == {"credentials": 2, "ok": True}
    cli("vault", "remove", "--user", "alice", "--service", "okx")
    assert [c["service"] for c in cli.json("vault", "list")] == ["binance"]
    cli("vault", "show", "--user", "alice", "--service", "okx", code=6)


def test_vault_errors_write_nothing(cli: Cli, tmp_path: Path) -> None:
    add_alice(cli)
    cli(
        "vault",
        "add",
        "--user",
        "alice",
        "--service",
        "binance",
        input=f"{CLI_API_KEY}\n{CLI_SECRET}\n",
    )
    cases: list[tuple[tuple[str, ...], str | None, dict[str, Any], int, str]] = [
        (("--user", "alice", "--service", "kraken"), f"{CLI_API_KEY}\n", {}, 5, "stdin ended"),
        (
            ("--user", "alice", "--service", "kraken"),
            f"\n{CLI_SECRET}\n",
            {},
            5,
            "api key is empty",
        ),
        (
            ("--user", "ghost", "--service", "kraken"),
            f"{CLI_API_KEY}\n{CLI_SECRET}\n",
            {},
            6,
            "no user",
        ),
        (
            ("--user", "alice", "--service", "bad name"),
            f"{CLI_API_KEY}\n{CLI_SECRET}\n",
            {},
            5,
            "service",
        ),
        (
            ("--user", "alice", "--service", "binance"),
            f"{CLI_API_KEY}\n{CLI_SECRET}\n",
            {},
            5,
            "already has a credential",
        ),
        (
            ("--user", "alice", "--service", "kraken"),
            f"{CLI_API_KEY}\n{CLI_SECRET}\n",
            {"CRYPTOTRADING_MASTER_KEY": "wrong-master-secret-0123456789"},
            8,
            "does not unlock",
        ),
        (
            ("--user", "alice", "--service", "kraken"),
            f"{CLI_API_KEY}\n{CLI_SECRET}\n",
            {"CRYPTOTRADING_MASTER_KEY": None},
            8,
            "no vault master secret",
        ),
    ]
    for args, stdin, env, code, message in cases:
        result = cli("vault", "add", *args, input=stdin, code=code, **env)
        assert message in result.stderr, result.stderr
        assert CLI_SECRET not in result.output and CLI_API_KEY not in result.output
        assert cli.count(ApiCredential) == 1
    key_file = tmp_path / "new.key"
    key_file.write_text("rotated-master-secret-0123456789\n")
    key_file.chmod(0o644)
    result = cli("vault", "rotate-key", "--new-master-key-file", str(key_file), code=2)
    assert "chmod 600" in result.stderr
    key_file.chmod(0o600)
    cli("vault", "rotate-key", "--new-master-key-file", str(key_file))
    cli("vault", "list", code=8)  # the old master no longer unlocks the vault
    new_env = {"CRYPTOTRADING_MASTER_KEY": None, "CRYPTOTRADING_MASTER_KEY_FILE": str(key_file)}
    assert "binance" in cli("vault", "list", **new_env).stdout


def test_vault_add_without_secret_line(cli: Cli) -> None:
    add_alice(cli)
    added = cli.json(
        "vault", "add", "--user", "alice", "--service", "kraken", input=f"{CLI_API_KEY}\n\n"
    )
    assert added["has_secret"] is False and added["has_passphrase"] is False
    revealed = cli.json("vault", "show", "--user", "alice", "--service", "kraken", "--reveal")
    assert revealed == {"username": "alice", "service": "kraken", "apiKey": CLI_API_KEY}


def test_commands_take_no_secret_arguments(cli: Cli) -> None:
    for group, command in (("users", "add"), ("users", "login"), ("vault", "add")):
        help_text = cli(group, command, "--help").stdout.lower()
        for option in ("--password", "--secret", "--api-secret", "--key "):
            assert option not in help_text, (group, command, option)
    result = cli("vault", "add", "--user", "alice", "--service", "x", "--secret", "s", code=2)
    assert "no such option" in result.output.lower()
