"""Helpers of the security tests: cheap KDF/hash parameters, secrets, the CLI with a
master key, a snapshot of every vault-related row."""

from __future__ import annotations

import json
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import Result

from cryptotrading.models.security import EncryptionKeyMetadata
from cryptotrading.models.users import ApiCredential, User
from cryptotrading.security import KdfParams, MasterSecret
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import count_rows, invoke, settings_env

#: Cheap parameters so tests stay fast; the defaults are measured in bench/.
FAST_KDF = KdfParams(time_cost=1, memory_cost_kib=1024, parallelism=1)
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery staple"
MASTER = MasterSecret(b"test-master-secret-0123456789abcdef", "test")
OTHER_MASTER = MasterSecret(b"another-master-secret-0123456789", "other")

#: An exchange key pair for the library tests.
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"

#: The master key and exchange key pair of the CLI tests.
CLI_MASTER_KEY = "cli-master-secret-0123456789abcdef"
CLI_API_KEY = "cliKEY-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
CLI_SECRET = "cliSECRET-0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def snapshot(engine: Engine) -> list[Any]:
    """Every vault-related row, to prove an operation changed nothing."""
    with Session(engine) as session:
        rows: list[Any] = []
        for model in (User, ApiCredential, EncryptionKeyMetadata):
            for obj in session.scalars(select(model).order_by(model.id)):
                rows.append(tuple(getattr(obj, column.key) for column in model.__table__.columns))
        return rows


class Cli:
    """``cryptotrading`` on the stores of *settings*, with :data:`CLI_MASTER_KEY` set."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env: dict[str, str | None] = {
            **settings_env(settings),
            "CRYPTOTRADING_MASTER_KEY": CLI_MASTER_KEY,
            "CRYPTOTRADING_MASTER_KEY_FILE": None,
        }

    def __call__(self, *args: str, input: str | None = None, code: int = 0, **env: Any) -> Result:
        """Run ARGS (extra environment in *env*; ``None`` unsets), assert the exit code."""
        return invoke(self.env, *args, code=code, input=input, env=env)

    def json(self, *args: str, input: str | None = None) -> Any:
        return json.loads(self(*args, "--json", input=input).stdout)

    def count(self, model: type[User] | type[ApiCredential]) -> int:
        with Stores(self.settings) as stores:
            return count_rows(stores.engine(stores.app), model)


def add_alice(cli: Cli) -> None:
    """``users add alice`` with :data:`PASSWORD`."""
    cli("users", "add", "alice", "--email", "alice@example.com", input=f"{PASSWORD}\n{PASSWORD}\n")
