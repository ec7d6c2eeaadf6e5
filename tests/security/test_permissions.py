"""Database files and the data dir are owner-only, even under a permissive umask.

File permissions concern SQLite stores only (PostgreSQL files belong to the server),
so this test creates SQLite files on purpose; the vault tests cover both backends."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import invoke
from tests.security.helpers import PASSWORD


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_and_vault_use_owner_only_files(tmp_path: Path, loose_umask: None) -> None:
    data_dir = tmp_path / "nested" / "data"
    env = {
        "CRYPTOTRADING_DATA_DIR": str(data_dir),
        "CRYPTOTRADING_LAYOUT": "three",
        "CRYPTOTRADING_MASTER_KEY": "permissions-master-secret-0123456789",
    }
    invoke(env, "init", code=0)
    assert _mode(data_dir) == 0o700
    databases = sorted(data_dir.glob("*.db"))
    assert [p.name for p in databases] == ["cryptotrading.db", "real_market_data.db", "rex.db"]
    for path in databases:
        assert _mode(path) == 0o600, path
    for args, stdin in (
        (["users", "add", "alice", "--email", "a@example.com"], f"{PASSWORD}\n{PASSWORD}\n"),
        (["vault", "add", "--user", "alice", "--service", "binance"], "key-0123456789\nsecret\n"),
    ):
        invoke(env, *args, code=0, input=stdin)
    for path in data_dir.iterdir():  # including any -wal / -shm left behind
        assert _mode(path) & 0o077 == 0, f"{path.name}: {_mode(path):o}"
