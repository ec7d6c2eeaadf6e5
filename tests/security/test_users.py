"""Users: create, get, list, deactivate, authenticate by password and API key."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select

from cryptotrading.errors import AuthenticationError, NotFoundError, ValidationError
from cryptotrading.models.users import User
from cryptotrading.security import UserService
from tests.helpers import count_rows
from tests.security.helpers import FAST_HASHER, PASSWORD


def _row(engine: Engine, username: str) -> User:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        user = session.scalar(select(User).where(User.username == username))
        assert user is not None
        session.expunge(user)
        return user


def test_create_get_list(users: UserService, app_engine: Engine) -> None:
    created = users.create("alice", "Alice@Example.com", PASSWORD, role="admin")
    assert created.email == "alice@example.com" and created.role == "admin"
    assert created.is_active and created.api_key_prefix is None
    assert users.get("alice") == created
    assert [u.username for u in users.list()] == ["alice"]
    stored = _row(app_engine, "alice")
    assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash
    assert "password" not in str(created.as_dict()) and "hash" not in str(created.as_dict())


@pytest.mark.parametrize(
    ("username", "email", "password", "problem"),
    [
        ("alice", "other@example.com", PASSWORD, "username 'alice' is already taken"),
        ("ALICE", "other@example.com", PASSWORD, "already taken"),
        ("carol", "ALICE@example.com", PASSWORD, "email 'alice@example.com' is already taken"),
        ("carol", "carol@example.com", "", "password is empty"),
        ("carol", "carol@example.com", "Zq9!x", "too short"),
        ("c", "carol@example.com", PASSWORD, "invalid username"),
        ("bad name", "carol@example.com", PASSWORD, "invalid username"),
        ("carol", "not-an-email", PASSWORD, "invalid email"),
        ("carol", "", PASSWORD, "invalid email"),
    ],
)
def test_bad_input_is_rejected_and_nothing_written(
    users: UserService, app_engine: Engine, username: str, email: str, password: str, problem: str
) -> None:
    users.create("alice", "alice@example.com", PASSWORD)
    with pytest.raises(ValidationError, match=problem) as caught:
        users.create(username, email, password)
    assert caught.value.hint
    assert count_rows(app_engine, User) == 1


def test_unknown_user(users: UserService) -> None:
    with pytest.raises(NotFoundError, match="no user 'ghost'"):
        users.get("ghost")
    with pytest.raises(NotFoundError):
        users.deactivate("ghost")
    with pytest.raises(NotFoundError):
        users.issue_api_key("ghost")


def test_password_authentication(users: UserService, app_engine: Engine) -> None:
    users.create("alice", "alice@example.com", PASSWORD)
    assert _row(app_engine, "alice").last_login_at is None
    assert users.authenticate("alice", PASSWORD).username == "alice"
    assert _row(app_engine, "alice").last_login_at is not None
    for username, password in (("alice", PASSWORD + "x"), ("alice", ""), ("ghost", PASSWORD)):
        with pytest.raises(AuthenticationError, match="invalid username or password") as caught:
            users.authenticate(username, password)
        assert PASSWORD not in str(caught.value)


def test_rehash_on_login_when_parameters_change(users: UserService, app_engine: Engine) -> None:
    users.create("alice", "alice@example.com", PASSWORD)
    old_hash = _row(app_engine, "alice").password_hash
    assert "m=1024,t=1,p=1" in old_hash
    stronger = UserService(app_engine, PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    stronger.authenticate("alice", PASSWORD)
    new_hash = _row(app_engine, "alice").password_hash
    assert new_hash != old_hash and "m=2048,t=2,p=1" in new_hash
    stronger.authenticate("alice", PASSWORD)  # the new hash verifies
    assert _row(app_engine, "alice").password_hash == new_hash  # and is not rehashed again
    with pytest.raises(AuthenticationError):  # a failed login rehashes nothing
        UserService(app_engine, FAST_HASHER).authenticate("alice", "wrong password!!")
    assert _row(app_engine, "alice").password_hash == new_hash


def test_api_key_issue_authenticate_replace(users: UserService, app_engine: Engine) -> None:
    users.create("alice", "alice@example.com", PASSWORD)
    issued = users.issue_api_key("alice")
    key = issued.key.get_secret_value()
    stored = _row(app_engine, "alice")
    assert stored.api_key_prefix == issued.prefix and key.startswith(issued.prefix)
    assert stored.api_key_hash is not None and key not in stored.api_key_hash
    assert users.authenticate_api_key(key).username == "alice"
    assert users.get("alice").api_key_prefix == issued.prefix
    replacement = users.issue_api_key("alice")
    with pytest.raises(AuthenticationError, match="invalid API key"):
        users.authenticate_api_key(key)  # the old key no longer works
    assert users.authenticate_api_key(replacement.key.get_secret_value()).username == "alice"
    forged = issued.prefix + "_" + "A" * 43
    for bad in ("", "garbage", forged, replacement.prefix + "_" + "B" * 43):
        with pytest.raises(AuthenticationError):
            users.authenticate_api_key(bad)
    users.revoke_api_key("alice")
    with pytest.raises(AuthenticationError):
        users.authenticate_api_key(replacement.key.get_secret_value())


def test_deactivate_is_a_soft_delete(users: UserService, app_engine: Engine) -> None:
    users.create("alice", "alice@example.com", PASSWORD)
    users.create("bob", "bob@example.com", PASSWORD)
    key = users.issue_api_key("alice").key.get_secret_value()
    info = users.deactivate("alice")
    assert not info.is_active and info.deleted_at is not None and info.api_key_prefix is None
    assert count_rows(app_engine, User) == 2  # the row is kept
    assert [u.username for u in users.list()] == ["bob"]
    assert [u.username for u in users.list(include_inactive=True)] == ["alice", "bob"]
    with pytest.raises(AuthenticationError):
        users.authenticate("alice", PASSWORD)
    with pytest.raises(AuthenticationError):
        users.authenticate_api_key(key)
    with pytest.raises(NotFoundError, match="no active user"):
        users.issue_api_key("alice")
    with pytest.raises(ValidationError, match="already taken"):
        users.create("alice", "new@example.com", PASSWORD)
    assert users.deactivate("alice").deleted_at == info.deleted_at  # idempotent
