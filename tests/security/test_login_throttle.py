"""Login throttling: too many failed password logins lock a name, before any check."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from cryptotrading.errors import AuthenticationError, ValidationError
from cryptotrading.models.caching import CacheEntry
from cryptotrading.security import UserService
from cryptotrading.security.login_throttle import LoginPolicy, LoginThrottle, throttle_key
from tests.helpers import SettingsFactory
from tests.security.helpers import FAST_HASHER, PASSWORD, Cli, add_alice

WRONG = "not the password at all"


@pytest.fixture
def strict(app_engine: Engine) -> UserService:
    policy = LoginPolicy(max_failures=3, window=timedelta(minutes=5), lockout=timedelta(minutes=5))
    service = UserService(app_engine, FAST_HASHER, login_policy=policy)
    service.create("alice", "alice@example.com", PASSWORD)
    return service


def _fail(service: UserService, username: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises(AuthenticationError, match="invalid username or password"):
            service.authenticate(username, WRONG)


def test_too_many_failures_lock_even_the_right_password(strict: UserService) -> None:
    _fail(strict, "alice", 3)
    with pytest.raises(AuthenticationError, match=r"too many failed logins .* try again in 30\d s"):
        strict.authenticate("alice", PASSWORD)
    assert strict.get("alice").last_login_at is None
    assert strict.unlock("alice") is True
    assert strict.authenticate("alice", PASSWORD).username == "alice"
    assert strict.unlock("alice") is False


def test_a_success_resets_the_count(strict: UserService, app_engine: Engine) -> None:
    _fail(strict, "alice", 2)
    strict.authenticate("alice", PASSWORD)
    _fail(strict, "ALICE", 2)  # names count case-insensitively
    assert strict.authenticate("alice", PASSWORD).username == "alice"
    with app_engine.connect() as conn:
        assert conn.scalar(select(CacheEntry.id).where(CacheEntry.cache_key.like("login%"))) is None


def test_unknown_names_are_locked_alike(strict: UserService) -> None:
    """The lock is per name, existing or not: it does not reveal which accounts exist."""
    _fail(strict, "mallory", 3)
    with pytest.raises(AuthenticationError, match="too many failed logins for 'mallory'"):
        strict.authenticate("mallory", WRONG)
    assert strict.authenticate("alice", PASSWORD).username == "alice"  # others unaffected


def test_the_lock_expires(app_engine: Engine) -> None:
    policy = LoginPolicy(max_failures=2, window=timedelta(seconds=1), lockout=timedelta(seconds=1))
    service = UserService(app_engine, FAST_HASHER, login_policy=policy)
    service.create("alice", "alice@example.com", PASSWORD)
    _fail(service, "alice", 2)
    with pytest.raises(AuthenticationError, match="too many"):
        service.authenticate("alice", PASSWORD)
    time.sleep(1.2)
    assert service.authenticate("alice", PASSWORD).username == "alice"


def test_concurrent_failures_are_all_counted(app_engine: Engine) -> None:
    throttle = LoginThrottle(app_engine, LoginPolicy(max_failures=100))
    with ThreadPoolExecutor(4) as pool:
        counts = sorted(pool.map(lambda _: throttle.record_failure("eve"), range(12)))
    assert counts == list(range(1, 13))
    with app_engine.connect() as conn:
        entry = conn.execute(
            select(CacheEntry.value).where(CacheEntry.cache_key == throttle_key("eve"))
        ).scalar_one()
    assert entry["failures"] == 12


def test_policy_and_key_validation() -> None:
    with pytest.raises(ValidationError, match="invalid login policy"):
        LoginPolicy(max_failures=0)
    assert throttle_key(" Alice ") == "login-failures:alice"
    assert len(throttle_key("x" * 5000)) < 255


def test_cli_lock_and_unlock(make_settings: SettingsFactory) -> None:
    cli = Cli(make_settings("three"))
    add_alice(cli)
    env = {"CRYPTOTRADING_LOGIN_MAX_FAILURES": "2"}
    for _ in range(2):
        cli("users", "login", "alice", input=f"{WRONG}\n", code=7, **env)
    locked = cli("users", "login", "alice", input=f"{PASSWORD}\n", code=7, **env)
    assert "too many failed logins" in locked.stderr and "users unlock alice" in locked.stderr
    assert cli.json("users", "unlock", "alice") == {"username": "alice", "unlocked": True}
    assert cli.json("users", "login", "alice", input=f"{PASSWORD}\n")["username"] == "alice"
