"""Password policy and hashing, API key format and comparison, master secret loading."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from cryptotrading.errors import ConfigurationError, ValidationError, VaultError
from cryptotrading.security import api_keys, passwords
from cryptotrading.security.keyring import MasterSecret, load_master_secret, read_key_file
from cryptotrading.settings import Settings

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("", "empty"),
        ("            ", "empty"),
        ("Zq9!x", "too short"),
        ("aaaaabbbbbbbbbb", "distinct"),
        ("password1234", "common"),
        ("x" * 1025, "longer"),
        ("my-name-is-alice!", "username"),
        ("trader@example.com-pw", "email"),
    ],
)
def test_weak_passwords_are_rejected_without_echo(password: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem) as caught:
        passwords.check_policy(password, username="alice", email="trader@example.com")
    if password.strip():
        assert password not in str(caught.value) and password not in caught.value.hint


def test_strong_password_passes_and_verifies() -> None:
    passwords.check_policy("correct horse battery staple", username="alice")
    hashed = passwords.hash_password("correct horse battery staple", FAST)
    assert hashed.startswith("$argon2id$")
    assert passwords.verify_password(hashed, "correct horse battery staple", FAST)
    assert not passwords.verify_password(hashed, "correct horse battery stapl", FAST)
    assert not passwords.verify_password("not a hash", "x", FAST)


def test_rehash_needed_when_parameters_change() -> None:
    hashed = passwords.hash_password("correct horse battery staple", FAST)
    assert not passwords.needs_rehash(hashed, FAST)
    assert passwords.needs_rehash(hashed, passwords.DEFAULT_HASHER)


def test_api_keys_are_random_prefixed_and_stored_as_digest() -> None:
    issued = [api_keys.generate() for _ in range(200)]
    clear = [i.key.get_secret_value() for i in issued]
    assert len(set(clear)) == 200 and len({i.prefix for i in issued}) == 200
    for item, key in zip(issued, clear, strict=True):
        assert api_keys.lookup_prefix(key) == item.prefix
        assert len(item.prefix) <= 16
        assert key not in item.digest and item.digest.startswith("sha256:")
        assert key not in repr(item) and key not in str(item)
        assert api_keys.matches(key, item.digest)
        assert not api_keys.matches(key[:-1] + ("A" if key[-1] != "A" else "B"), item.digest)
    assert api_keys.lookup_prefix("ct_short_key") is None
    assert api_keys.lookup_prefix("") is None


def test_api_key_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api_keys.hmac, "compare_digest", spy)
    issued = api_keys.generate()
    assert api_keys.matches(issued.key.get_secret_value(), issued.digest)
    assert not api_keys.matches("ct_wrong", issued.digest)
    assert len(calls) == 2


def _settings(tmp_path: Path, key_file: Path | None = None) -> Settings:
    return Settings(data_dir=tmp_path, master_key_file=key_file)


def test_master_secret_from_environment(tmp_path: Path) -> None:
    secret = "env-master-secret-0123456789"
    master = load_master_secret(_settings(tmp_path), {"CRYPTOTRADING_MASTER_KEY": secret})
    assert master.reveal() == secret.encode()
    assert secret not in repr(master) and secret not in str(master)


def test_master_secret_from_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    path.write_text("file-master-secret-0123456789\n")
    path.chmod(0o600)
    master = load_master_secret(_settings(tmp_path, path), {})
    assert master.reveal() == b"file-master-secret-0123456789"


def test_master_secret_errors(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="no vault master secret"):
        load_master_secret(_settings(tmp_path), {})
    path = tmp_path / "vault.key"
    path.write_text("file-master-secret-0123456789")
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="accessible by other users") as caught:
        read_key_file(path)
    assert "chmod 600" in caught.value.hint
    path.chmod(0o600)
    with pytest.raises(ConfigurationError, match="two master secrets"):
        load_master_secret(_settings(tmp_path, path), {"CRYPTOTRADING_MASTER_KEY": "x" * 20})
    with pytest.raises(ConfigurationError, match="cannot be read"):
        read_key_file(tmp_path / "missing.key")
    with pytest.raises(ConfigurationError, match="too short"):
        load_master_secret(_settings(tmp_path), {"CRYPTOTRADING_MASTER_KEY": "tooshort"})
    path.write_text("\n")
    with pytest.raises(ConfigurationError, match="too short"):
        read_key_file(path)
    with pytest.raises(ConfigurationError, match="too short"):
        MasterSecret(b"", "test")
