"""A restore killed mid-way leaves its staged copy beside the database; the next restore
of that store removes it, and never the staged copy of a restore still running."""

from __future__ import annotations

from pathlib import Path

from cryptotrading.ops import backup, backup_files
from cryptotrading.ops.lifecycle import initialize
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.ops.helpers import insert_candles


def test_next_restore_removes_a_killed_restores_staged_copy(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    with Stores(Settings(data_dir=tmp_path / "data")) as stores:
        initialize(stores)
        insert_candles(stores.engine("market"), 0, 20)
        made = backup.create_backup(stores, "market", "daily", backups)
        live = stores.get("market").path
        assert live is not None
        leftover = live.with_name(f"{live.name}.restore-20261201T000000000000Z.partial")
        leftover.write_bytes(b"half a database")
        other = live.with_name("cryptotrading.db.restore-x.partial")  # another store's
        other.write_bytes(b"x")
        with backup_files.in_use(live.parent):  # a restore of this directory is running
            assert backup_files.remove_restore_leftovers(live) == []
        assert leftover.exists()
        backup.restore_backup(stores, made.id, backups)
        assert not leftover.exists()
        assert other.exists()  # only the restored store's leftovers
        assert not list(live.parent.glob(f"{live.name}.restore-*"))
