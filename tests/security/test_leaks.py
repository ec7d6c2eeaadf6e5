"""Secrets never leak: a full CLI workflow with DEBUG logging (our loggers and
SQLAlchemy's statement log with parameters) to a file, then every database file
(including -wal and -shm), a pg_dump of PostgreSQL stores, a decompressed
``backup create`` of the app store, the log and every captured output are searched for
each plain secret."""

from __future__ import annotations

import gzip
import logging
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, invoke, settings_env

MASTER_KEY = "leak-test-master-ZmFjZWIwMGstbWFzdGVyLXNlY3JldA"
PASSWORD = "leak-test-password-Q7wZ2xR9"
EXCHANGE_KEY = "leakKEY-5ec7e7-vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2z"
EXCHANGE_SECRET = "leakSECRET-NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZ"
PASSPHRASE = "leak-passphrase-3e1b9c"


class Workflow:
    """Runs CLI commands against *settings*; records everything they printed."""

    def __init__(self, settings: Settings) -> None:
        self.env: dict[str, str | None] = {
            **settings_env(settings),
            "CRYPTOTRADING_MASTER_KEY": MASTER_KEY,
            "CRYPTOTRADING_MASTER_KEY_FILE": None,
        }
        self.outputs: list[str] = []
        self.revealing: list[str] = []

    def __call__(
        self, *args: str, stdin: str = "", code: int = 0, reveals: bool = False, **env: str
    ) -> str:
        result = invoke(self.env, *args, code=code, input=stdin, env=env)
        (self.revealing if reveals else self.outputs).extend([result.stdout, result.stderr])
        return result.stdout


@contextmanager
def _debug_log(path: Path) -> Iterator[None]:
    """Everything logged at DEBUG (ours) and INFO (SQLAlchemy statements + parameters)."""
    handler = logging.FileHandler(path)
    root, sql = logging.getLogger(), logging.getLogger("sqlalchemy.engine")
    levels = root.level, sql.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    sql.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(levels[0])
        sql.setLevel(levels[1])


@contextmanager
def _hold_wal_open(settings: Settings) -> Iterator[None]:
    """Keep a connection on every SQLite file so its -wal/-shm survive the commands."""
    with ExitStack() as stack, Stores(settings) as stores:
        for store in stores:
            if store.path is not None:
                connection = sqlite3.connect(store.path)
                connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
                stack.callback(connection.close)
        yield


def _database_dumps(settings: Settings, tmp_path: Path) -> list[Path]:
    """Every file the stores consist of: SQLite files with -wal/-shm, or pg_dump output."""
    files = []
    with Stores(settings) as stores:
        for store in stores:
            if store.path is not None:
                files += sorted(store.path.parent.glob(store.path.name + "*"))
                continue
            pg_dump = shutil.which("pg_dump")
            if pg_dump is None:
                pytest.fail("pg_dump is needed to search PostgreSQL stores for secrets")
            url = make_url(store.url).set(drivername="postgresql")
            dump = tmp_path / f"{store.name}.sql"
            subprocess.run(
                [pg_dump, "--data-only", "-f", str(dump), url.render_as_string(False)],
                check=True,
                timeout=120,
            )
            files.append(dump)
    return files


def _backup_contents(directory: Path) -> dict[str, bytes]:
    """The backups made by ``backup create``, decompressed (gzip / pg_dump archive)."""
    contents = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        elif path.name.endswith(".pgdump"):
            pg_restore = shutil.which("pg_restore")
            assert pg_restore is not None, "pg_restore is needed to read PostgreSQL backups"
            data = subprocess.run(
                [pg_restore, "-f", "-", str(path)], check=True, capture_output=True, timeout=120
            ).stdout
        contents[f"backup {path.name}"] = data
    readable = [data for name, data in contents.items() if name.endswith((".gz", ".pgdump"))]
    assert readable and all(b"alice@example.com" in data for data in readable)  # really read
    return contents


@pytest.mark.slow  # a full CLI workflow, then every file, dump and log searched
def test_no_secret_leaks_after_a_full_workflow(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings("three")
    log = tmp_path / "cryptotrading.log"
    run = Workflow(settings)
    with _hold_wal_open(settings), _debug_log(log):
        run("users", "add", "alice", "--email", "alice@example.com", stdin=f"{PASSWORD}\n" * 2)
        run("users", "add", "bob", "--email", "bob@example.com", stdin=f"{PASSWORD}\n" * 2)
        run("users", "login", "alice", stdin=f"{PASSWORD}\n")
        run("users", "login", "alice", stdin="wrong-password-xyz\n", code=7)
        user_key = run("users", "new-api-key", "alice", reveals=True).strip()
        run("users", "login", "--api-key", stdin=user_key + "\n")
        run(
            "vault", "add", "--user", "alice", "--service", "okx", "--passphrase",
            stdin=f"{EXCHANGE_KEY}\n{EXCHANGE_SECRET}\n{PASSPHRASE}\n",
        )  # fmt: skip
        run(
            "vault", "add", "--user", "bob", "--service", "binance",
            stdin=f"{EXCHANGE_KEY}\n{EXCHANGE_SECRET}\n",
        )  # fmt: skip
        run(
            "vault", "add", "--user", "bob", "--service", "binance",
            stdin=f"{EXCHANGE_KEY}\n{EXCHANGE_SECRET}\n", code=5,
        )  # fmt: skip
        run("vault", "list")
        run("vault", "list", "--json")
        run("vault", "show", "--user", "alice", "--service", "okx")
        run("vault", "show", "--user", "alice", "--service", "okx", "--json")
        revealed = run("vault", "show", "--user", "alice", "--service", "okx", "--reveal",
                       reveals=True)  # fmt: skip
        assert EXCHANGE_SECRET in revealed and PASSPHRASE in revealed  # the one way out
        run("vault", "rotate-key", "--json")
        run("vault", "keys", "--json")
        run("vault", "verify")
        wrong = {"CRYPTOTRADING_MASTER_KEY": "wrong-master-secret-0123456789"}
        run("--debug", "vault", "show", "--user", "alice", "--service", "okx", code=8, **wrong)
        run("vault", "remove", "--user", "bob", "--service", "binance")
        run("users", "deactivate", "bob")
        backups = tmp_path / "backups"
        run("backup", "create", "--store", "app", "--dir", str(backups), "--json")
        files = _database_dumps(settings, tmp_path)
        haystacks = {str(path): path.read_bytes() for path in files}
        haystacks.update(_backup_contents(backups))
        if settings.app_url is None:  # SQLite: WAL included, every file owner-only
            assert any(path.name.endswith("-wal") for path in files), files
            for path in [*files, settings.data_dir]:
                mode = stat.S_IMODE(path.stat().st_mode)
                assert mode & 0o077 == 0, f"{path} is accessible by others ({mode:o})"
    secrets = {
        "password": PASSWORD,
        "exchange key": EXCHANGE_KEY,
        "exchange secret": EXCHANGE_SECRET,
        "passphrase": PASSPHRASE,
        "user API key": user_key,
        "master secret": MASTER_KEY,
    }
    assert log.stat().st_size > 0 and "SELECT" in log.read_text()
    haystacks[str(log)] = log.read_bytes()
    haystacks.update({f"output {i}": text.encode() for i, text in enumerate(run.outputs)})
    for name, secret in secrets.items():
        for where, data in haystacks.items():
            assert secret.encode() not in data, f"the {name} leaked into {where}"
