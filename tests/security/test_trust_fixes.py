"""Issue 10: every vault command refuses a wrong master secret before it reads or
writes anything (library and CLI, both backends), and a password login does the same
work whether or not the account exists (no user enumeration by timing)."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher, extract_parameters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from cryptotrading.errors import AuthenticationError, VaultError
from cryptotrading.security import UserService, Vault
from cryptotrading.security.login_throttle import LoginPolicy
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory
from tests.security.helpers import (
    API_KEY,
    CLI_API_KEY,
    CLI_SECRET,
    OTHER_MASTER,
    PASSWORD,
    SECRET,
    Cli,
    snapshot,
)

WRONG_MASTER_ENV = {"CRYPTOTRADING_MASTER_KEY": "wrong-master-secret-0123456789"}


# -- vault: a wrong master secret is refused by every operation ------------------
def _wrong_key_calls(vault: Vault) -> dict[str, Callable[[], Any]]:
    return {
        "unlock": vault.unlock,
        "add": lambda: vault.add("bob", "kraken", API_KEY, SECRET),
        "replace": lambda: vault.add("alice", "binance", API_KEY, SECRET, replace=True),
        "get": lambda: vault.get("alice", "binance"),
        "describe": lambda: vault.describe("alice", "binance"),
        "list": vault.list,
        "list_user": lambda: vault.list("bob"),
        "remove": lambda: vault.remove("alice", "binance"),
        "remove_missing": lambda: vault.remove("bob", "binance"),
        "remove_ghost": lambda: vault.remove("ghost", "binance"),
        "verify": vault.verify,
        "data_keys": vault.data_keys,
        "rotate_key": vault.rotate_key,
    }


OPERATIONS = [
    "unlock",
    "add",
    "replace",
    "get",
    "describe",
    "list",
    "list_user",
    "remove",
    "remove_missing",
    "remove_ghost",
    "verify",
    "data_keys",
    "rotate_key",
]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_wrong_master_is_refused_and_writes_nothing(
    vault: Vault, make_vault: Callable[..., Vault], app_engine: Engine, operation: str
) -> None:
    vault.add("alice", "binance", API_KEY, SECRET)
    before = snapshot(app_engine)
    intruder = make_vault(OTHER_MASTER)
    with pytest.raises(VaultError, match="does not unlock") as caught:
        _wrong_key_calls(intruder)[operation]()
    assert "master secret" in caught.value.hint
    assert snapshot(app_engine) == before
    assert vault.get("alice", "binance").api_key.get_secret_value() == API_KEY


@pytest.mark.parametrize("operation", ["list", "verify", "data_keys", "rotate_key"])
def test_wrong_master_is_refused_by_a_vault_without_credentials(
    vault: Vault, make_vault: Callable[..., Vault], app_engine: Engine, operation: str
) -> None:
    """A key exists but no credential does: nothing to decrypt, the key is still checked
    (a rotation would otherwise retire the real key for one made from the wrong secret)."""
    vault.add("alice", "binance", API_KEY, SECRET)
    vault.remove("alice", "binance")
    before = snapshot(app_engine)
    with pytest.raises(VaultError, match="does not unlock"):
        _wrong_key_calls(make_vault(OTHER_MASTER))[operation]()
    assert snapshot(app_engine) == before
    vault.add("alice", "binance", API_KEY, SECRET)  # the real key still works
    assert vault.verify() == 1


def test_an_empty_vault_has_no_key_to_check(make_vault: Callable[..., Vault]) -> None:
    """Before the first credential there is no key: listing works with any secret."""
    empty = make_vault(OTHER_MASTER)
    assert empty.unlock() is None
    assert empty.list() == [] and empty.data_keys() == [] and empty.verify() == 0


@pytest.fixture
def cli(make_settings: SettingsFactory) -> Cli:
    cli = Cli(make_settings("three"))
    cli("users", "add", "alice", "--email", "alice@example.com", input=f"{PASSWORD}\n{PASSWORD}\n")
    cli(
        "vault", "add", "--user", "alice", "--service", "binance",
        input=f"{CLI_API_KEY}\n{CLI_SECRET}\n",
    )  # fmt: skip
    return cli


def _cli_snapshot(cli: Cli) -> list[Any]:
    with Stores(cli.settings) as stores:
        return snapshot(stores.engine(stores.app))


CLI_COMMANDS: list[tuple[str, ...]] = [
    ("remove", "--user", "alice", "--service", "binance"),
    ("remove", "--user", "alice", "--service", "kraken"),
    ("remove", "--user", "ghost", "--service", "binance"),
    ("list",),
    ("list", "--user", "alice"),
    ("show", "--user", "alice", "--service", "binance"),
    ("show", "--user", "alice", "--service", "binance", "--reveal"),
    ("add", "--user", "alice", "--service", "kraken"),
    ("rotate-key",),
    ("keys",),
    ("verify",),
]


@pytest.mark.parametrize("command", CLI_COMMANDS, ids=lambda c: "-".join(c[:2]))
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_cli_wrong_master_exits_8_and_writes_nothing(
    cli: Cli, command: tuple[str, ...], as_json: bool
) -> None:
    before = _cli_snapshot(cli)
    args = ("vault", *command, *(["--json"] if as_json else []))
    result = cli(*args, input=f"{CLI_API_KEY}\n{CLI_SECRET}\n", code=8, **WRONG_MASTER_ENV)
    assert "error:" in result.stderr and "does not unlock" in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.output
    assert CLI_API_KEY not in result.output and CLI_SECRET not in result.output
    assert _cli_snapshot(cli) == before
    assert cli.json("vault", "show", "--user", "alice", "--service", "binance")["key_id"]


# -- users: the same work on every login path -------------------------------------
class SpyHasher(PasswordHasher):
    """The real hasher, recording the hashes it verifies and counting new hashes."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified: list[str] = []
        self.hashed = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.hashed += 1
        return super().hash(password, salt=salt)

    def reset(self) -> None:
        self.verified.clear()
        self.hashed = 0


#: The parameters of the hashes the spy makes (what every login must verify at).
SPY_PARAMETERS = extract_parameters(PasswordHasher(1, 1024, 1).hash("reference password"))


def test_the_dummy_hash_is_ready_when_the_service_is_built(app_engine: Engine) -> None:
    spy = SpyHasher()
    service = UserService(app_engine, spy)
    assert extract_parameters(service.dummy_hash) == SPY_PARAMETERS
    assert not spy.check_needs_rehash(service.dummy_hash)
    assert UserService(app_engine, spy).dummy_hash != service.dummy_hash  # fresh salt each time


def test_every_login_path_verifies_exactly_once_at_the_same_parameters(
    app_engine: Engine,
) -> None:
    spy = SpyHasher()
    service = UserService(app_engine, spy, login_policy=LoginPolicy(max_failures=50))
    service.create("alice", "alice@example.com", PASSWORD)
    service.create("carol", "carol@example.com", PASSWORD)
    service.deactivate("carol")
    paths: dict[str, tuple[str, str, bool]] = {
        "unknown user": ("mallory", PASSWORD, False),
        "unknown user, second try": ("mallory", PASSWORD, False),
        "another unknown user": ("trent", "something else 123", False),
        "deactivated user": ("carol", PASSWORD, False),
        "known user, wrong password": ("alice", "wrong password 123", False),
        "known user, right password": ("alice", PASSWORD, True),
    }
    for path, (username, password, ok) in paths.items():
        spy.reset()
        if ok:
            assert service.authenticate(username, password).username == username
        else:
            with pytest.raises(AuthenticationError, match="invalid username or password"):
                service.authenticate(username, password)
        assert len(spy.verified) == 1, path
        assert extract_parameters(spy.verified[0]) == SPY_PARAMETERS, path
        assert spy.hashed == 0, path  # no hash computed on a login (parameters unchanged)


def test_a_locked_name_verifies_nothing_whether_or_not_it_exists(app_engine: Engine) -> None:
    """The lock is counted per name, existing or not, and refuses before any hashing:
    a locked known and a locked unknown name take the same path and message."""
    spy = SpyHasher()
    service = UserService(app_engine, spy, login_policy=LoginPolicy(max_failures=2))
    service.create("alice", "alice@example.com", PASSWORD)
    messages = []
    for username in ("alice", "mallory"):
        for _ in range(2):
            with pytest.raises(AuthenticationError):
                service.authenticate(username, "wrong password 123")
        spy.reset()
        with pytest.raises(AuthenticationError, match="too many failed logins") as caught:
            service.authenticate(username, PASSWORD)
        assert spy.verified == [] and spy.hashed == 0
        text = f"{caught.value} {caught.value.hint}".replace(username, "NAME")
        messages.append(re.sub(r"in \d+ s", "in N s", text))
    assert messages[0] == messages[1]


def test_unknown_and_known_logins_take_the_same_time(app_engine: Engine) -> None:
    """In-process timing, robust on a loaded machine: each pair runs on a freshly built
    service (so a lazily computed dummy hash would show), the two logins of a pair are
    interleaved in alternating order, and the medians are compared with a tolerance."""

    def hasher() -> PasswordHasher:
        return PasswordHasher(time_cost=2, memory_cost=16 * 1024, parallelism=1)

    setup = UserService(app_engine, hasher())
    setup.create("alice", "alice@example.com", PASSWORD)
    unknown: list[float] = []
    known: list[float] = []
    policy = LoginPolicy(max_failures=10_000)

    def timed(service: UserService, username: str) -> float:
        started = time.perf_counter()
        with pytest.raises(AuthenticationError):
            service.authenticate(username, "wrong password 123")
        return time.perf_counter() - started

    for pair in range(15):
        service = UserService(app_engine, hasher(), login_policy=policy)
        if pair % 2:
            known.append(timed(service, "alice"))
            unknown.append(timed(service, "mallory"))
        else:
            unknown.append(timed(service, "mallory"))
            known.append(timed(service, "alice"))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.6 < ratio < 1.5, (ratio, unknown, known)


#: Any code point, lone surrogates and NUL included, plus names that exist.
hostile_text = st.text(st.characters(exclude_categories=()), max_size=300)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    username=st.one_of(hostile_text, st.sampled_from(["alice", "alice\n", "ALICE", "alice\x00"])),
    password=st.one_of(hostile_text, st.text(max_size=2000), st.just(PASSWORD)),
)
def test_any_name_and_password_fail_alike_with_one_verification(
    app_engine: Engine, username: str, password: str
) -> None:
    """Hostile names and passwords (any Unicode, NUL, huge): one verification at the
    hasher's parameters and the same named error, whether or not the name exists."""
    spy = SpyHasher()
    service = UserService(app_engine, spy, login_policy=LoginPolicy(max_failures=10_000))
    if not service.list(include_inactive=True):
        service.create("alice", "alice@example.com", "another good passphrase")
    spy.reset()
    with pytest.raises(AuthenticationError) as caught:
        service.authenticate(username, password)
    assert str(caught.value) == "invalid username or password"
    assert len(spy.verified) == 1 and spy.hashed == 0
    assert extract_parameters(spy.verified[0]) == SPY_PARAMETERS
