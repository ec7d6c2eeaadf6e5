"""Fuzz ``users`` and ``vault``: names, emails, roles, passwords, API keys and
credential values read from stdin (text with any Unicode, raw bytes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as s
from tests.fuzz.harness import SQLITE_ONLY, Fuzzer, Row, fuzz_settings, options, write

pytestmark = [pytest.mark.fuzz, SQLITE_ONLY]

PASSWORD = "correct horse battery staple"

#: stdin: lines of text (any Unicode), raw bytes, nothing.
stdin = st.one_of(
    st.lists(s.any_text, max_size=4).map(lambda lines: "\n".join(lines) + "\n"),
    st.binary(max_size=200),
    st.just(""),
)


def login_failures(table: str, row: Row) -> bool:
    """A failed login is counted by design (the throttle's cache row)."""
    return table == "cache_entries" and str(row.get("cache_key", "")).startswith("login-failures:")


@pytest.fixture
def alice(fuzzer: Fuzzer) -> Fuzzer:
    fuzzer.ok(
        ["users", "add", "alice", "--email", "alice@example.com"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    return fuzzer


@fuzz_settings(0.5)
@given(
    values=s.variants(
        {"username": "bob", "email": "bob@example.com", "role": None},
        {
            "username": s.any_text,
            "email": st.one_of(st.just("alice@example.com"), s.any_text),
            "role": s.maybe(s.any_text),
        },
    ),
    password=st.one_of(st.just(f"{PASSWORD}\n{PASSWORD}\n"), stdin),
)
def test_add(alice: Fuzzer, values: dict[str, str | None], password: str | bytes) -> None:
    name = values.pop("username") or ""
    if name == "bob":  # a fresh valid user each time, so valid examples succeed
        alice.facts["n"] = str(int(alice.facts.get("n", "0")) + 1)
        name = f"bob{alice.facts['n']}"
        if values["email"] == "bob@example.com":
            values["email"] = f"{name}@example.com"
    alice.run(["users", "add", "--json", *options(**values), "--", name], input=password)


@fuzz_settings(0.5)
@given(
    name=st.one_of(st.just("alice"), st.just("ALICE"), s.any_text),
    password=st.one_of(st.just(PASSWORD + "\n"), stdin),
    api_key=st.booleans(),
)
def test_login(alice: Fuzzer, name: str, password: str | bytes, api_key: bool) -> None:
    args = ["users", "login", "--json", *(["--api-key"] if api_key else ["--", name])]
    alice.run(args, input=password, ignore=login_failures)
    alice.ok(["users", "unlock", "alice"])


@fuzz_settings()
@given(
    command=st.sampled_from(["show", "deactivate", "new-api-key", "revoke-api-key", "unlock"]),
    name=st.one_of(st.just("alice"), s.any_text),
)
def test_name_commands(alice: Fuzzer, command: str, name: str) -> None:
    alice.run(["users", command, "--json", "--", name])


@pytest.fixture
def vault(alice: Fuzzer) -> Fuzzer:
    alice.ok(["vault", "add", "--user", "alice", "--service", "binance"], input="key1\nsecret1\n")
    return alice


@fuzz_settings(0.5)
@given(
    values=s.variants(
        {"user": "alice", "service": "kraken", "label": None},
        {"user": s.any_text, "service": s.any_text, "label": s.maybe(s.any_text)},
    ),
    flags=st.lists(st.sampled_from(["--passphrase", "--replace"]), unique=True),
    secrets=st.one_of(st.just("k\ns\np\n"), stdin),
)
def test_vault_add(
    vault: Fuzzer, values: dict[str, str | None], flags: list[str], secrets: str | bytes
) -> None:
    vault.run(["vault", "add", "--json", *flags, *options(**values)], input=secrets)


@fuzz_settings()
@given(
    command=st.sampled_from(["show", "remove", "list"]),
    user=st.one_of(st.just("alice"), s.any_text),
    service=st.one_of(st.just("binance"), s.any_text),
    reveal=st.booleans(),
)
def test_vault_lookups(vault: Fuzzer, command: str, user: str, service: str, reveal: bool) -> None:
    if command == "list":
        vault.run(["vault", "list", "--json", f"--user={user}"])
        return
    extra = ["--reveal"] if reveal and command == "show" else []
    vault.run(["vault", command, "--json", *extra, f"--user={user}", f"--service={service}"])


@fuzz_settings(0.3)
@given(content=s.file_bytes(s.any_text), mode=st.sampled_from([0o600, 0o644]))
def test_vault_rotate_key_file(vault: Fuzzer, content: bytes, mode: int) -> None:
    path = write(vault.workdir, "new.key", content)
    path.chmod(mode)
    result = vault.run(["vault", "rotate-key", "--json", f"--new-master-key-file={path}"])
    if result.exit_code == 0:  # the vault now answers to the new secret
        kept = path.with_name(f"master-{len(list(vault.workdir.glob('master-*')))}.key")
        path.rename(kept)
        kept.chmod(0o600)
        vault.env["CRYPTOTRADING_MASTER_KEY"] = None
        vault.env["CRYPTOTRADING_MASTER_KEY_FILE"] = str(kept)
