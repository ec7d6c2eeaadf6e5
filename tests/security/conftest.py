"""Fixtures of the security tests: a user service, vaults (cheap KDF/hash parameters)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from cryptotrading.security import KdfParams, MasterSecret, UserService, Vault
from tests.security.helpers import FAST_HASHER, FAST_KDF, MASTER, PASSWORD


@pytest.fixture
def users(app_engine: Engine) -> UserService:
    return UserService(app_engine, FAST_HASHER)


@pytest.fixture
def make_vault(app_engine: Engine) -> Callable[..., Vault]:
    def factory(master: MasterSecret = MASTER, kdf: KdfParams = FAST_KDF) -> Vault:
        return Vault(app_engine, master, kdf_params=kdf)

    return factory


@pytest.fixture
def vault(make_vault: Callable[..., Vault], users: UserService) -> Vault:
    """A vault with users alice and bob."""
    users.create("alice", "alice@example.com", PASSWORD)
    users.create("bob", "bob@example.com", PASSWORD)
    return make_vault()
