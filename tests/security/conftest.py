"""Fixtures of the security tests: the app engine, cheap KDF/hash parameters, a master."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine

from cryptotrading.security import KdfParams, MasterSecret, UserService, Vault
from cryptotrading.stores import Stores

#: Cheap parameters so tests stay fast; the defaults are measured in bench/.
FAST_KDF = KdfParams(time_cost=1, memory_cost_kib=1024, parallelism=1)
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery staple"
MASTER = MasterSecret(b"test-master-secret-0123456789abcdef", "test")


@pytest.fixture
def engine(stores: Stores) -> Engine:
    return stores.engine(stores.app)


@pytest.fixture
def users(engine: Engine) -> UserService:
    return UserService(engine, FAST_HASHER)


@pytest.fixture
def make_vault(engine: Engine) -> Callable[..., Vault]:
    def factory(master: MasterSecret = MASTER, kdf: KdfParams = FAST_KDF) -> Vault:
        return Vault(engine, master, kdf_params=kdf)

    return factory


@pytest.fixture
def vault(make_vault: Callable[..., Vault], users: UserService) -> Vault:
    """A vault with users alice and bob."""
    users.create("alice", "alice@example.com", PASSWORD)
    users.create("bob", "bob@example.com", PASSWORD)
    return make_vault()
