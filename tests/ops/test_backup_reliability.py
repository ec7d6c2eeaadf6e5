"""Backups under stress: a concurrent writer, a full disk, a read-only target."""

from __future__ import annotations

import gzip
import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cryptotrading.ops import backup
from cryptotrading.settings import Settings
from cryptotrading.stores import Stores
from tests.helpers import ROOT, SettingsFactory, count_rows, invoke, run_cli
from tests.ops.helpers import drop_pg, insert_candles, start_writer

BATCH = 50


@pytest.mark.slow
def test_backup_while_another_process_writes_is_consistent(
    make_settings: SettingsFactory, backup_dir: Path
) -> None:
    with Stores(make_settings()) as stores:
        insert_candles(stores.engine("market"), 0, 2000, "BASE/USDT")
        writer = start_writer(stores.market.url, BATCH)
        try:
            time.sleep(0.3)
            manifests = [
                backup.create_backup(stores, "market", "daily", backup_dir) for _ in range(3)
            ]
            time.sleep(0.2)
        finally:
            writer.kill()
            writer.wait()
        written = count_rows(stores.engine("market"), "time_series") - 2000
        seen = []
        for manifest in manifests:
            rows = manifest.row_counts["time_series"] - 2000
            # A consistent point: whole transactions only, never half a batch.
            assert rows % BATCH == 0, rows
            seen.append(rows)
            verification = backup.verify_backup(stores, manifest.id, backup_dir)
            assert verification.ok, verification.failures()
        assert seen == sorted(seen) and seen[-1] <= written
        assert seen[-1] > 0, "the writer never committed during the backups"
        if stores.market.path is not None:
            # The copy holds exactly candles 0..n-1 of the writer: a prefix of its commits.
            copy = backup_dir / "check.db"
            copy.write_bytes(gzip.decompress((backup_dir / manifests[-1].file).read_bytes()))
            with sqlite3.connect(copy) as connection:
                assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                low, high, total = connection.execute(
                    "SELECT min(timestamp), max(timestamp), count(*) FROM time_series "
                    "WHERE symbol = 'WRITER/USDT'"
                ).fetchone()
            assert total == seen[-1] and (high - low) // 3_600_000 == total - 1


def _fsize_limit(limit: int) -> object:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_gives_clear_error_and_leaves_source_untouched(
    make_settings: SettingsFactory, backup_dir: Path
) -> None:
    settings = make_settings()
    with Stores(settings) as stores:
        insert_candles(stores.engine("market"), 0, 20_000)
        before = count_rows(stores.engine("market"), "time_series")
    backup_dir.mkdir()
    # Files may not grow beyond 64 KiB in the child: the backup cannot be written.
    result = run_cli(
        settings, "backup", "create", "--store", "market", "--dir", str(backup_dir),
        preexec=_fsize_limit(64 * 1024),
    )  # fmt: skip
    assert result.returncode != 0
    assert "error: cannot write backup" in result.stderr, result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(backup_dir.iterdir()) == []  # no partial file, no manifest
    with Stores(settings) as stores:
        assert count_rows(stores.engine("market"), "time_series") == before
        if stores.market.path is not None:
            with sqlite3.connect(stores.market.path) as connection:
                assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert backup.list_backups(backup_dir) == []


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) not installed")
def test_read_only_target_gives_clear_error_and_leaves_source_untouched(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings()
    with Stores(settings) as stores:
        insert_candles(stores.engine("market"), 0, 100)
    target = tmp_path / "read-only"
    target.mkdir()
    target.chmod(0o555)
    # As root, permissions do not stop writes; drop the capability that overrides them.
    no_override = ("setpriv", "--bounding-set=-dac_override,-dac_read_search",
                   "--inh-caps=-dac_override,-dac_read_search")  # fmt: skip
    for directory in (target, target / "sub"):
        result = run_cli(
            settings, "backup", "create", "--store", "market", "--dir", str(directory),
            prefix=no_override,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "error: " in result.stderr and "backup directory" in result.stderr
        assert "Traceback" not in result.stderr
    assert list(target.iterdir()) == []
    with Stores(settings) as stores:
        assert count_rows(stores.engine("market"), "time_series") == 100


def test_cli_backup_commands_with_json(make_settings: SettingsFactory, backup_dir: Path) -> None:
    settings: Settings = make_settings()
    with Stores(settings) as stores:
        insert_candles(stores.engine("market"), 0, 10)
    created = invoke(settings, "backup", "create", "--json", "--dir", str(backup_dir))
    assert created.exit_code == 0, created.stderr
    manifests = json.loads(created.stdout)
    assert {m["store"] for m in manifests} == {"app", "market"}
    listed = json.loads(
        invoke(settings, "backup", "list", "--json", "--dir", str(backup_dir)).stdout
    )
    assert {m["id"] for m in listed} == {m["id"] for m in manifests}
    market_id = next(m["id"] for m in manifests if m["store"] == "market")
    verified = invoke(settings, "backup", "verify", market_id, "--json", "--dir", str(backup_dir))
    assert verified.exit_code == 0 and json.loads(verified.stdout)["ok"] is True
    restored = invoke(settings, "backup", "restore", market_id, "--json", "--dir", str(backup_dir))
    assert restored.exit_code == 0, restored.stderr
    assert json.loads(restored.stdout)["store"] == "market"
    pruned = invoke(
        settings, "backup", "prune", "--keep-daily", "0", "--json", "--dir", str(backup_dir)
    )
    assert pruned.exit_code == 0 and len(json.loads(pruned.stdout)["removed"]) == 2
    missing = invoke(settings, "backup", "verify", "nope", "--dir", str(backup_dir))
    assert missing.exit_code == 6 and "error: no backup 'nope'" in missing.stderr
    if settings.market_url:
        drop_pg(settings.market_url, json.loads(restored.stdout)["kept_aside"])


BACKUPPER = """
import sys
from pathlib import Path
from cryptotrading.ops.backup import create_backup
from cryptotrading.settings import load_settings
from cryptotrading.stores import Stores
with Stores(load_settings()) as stores:
    print("started", flush=True)
    create_backup(stores, "market", "daily", Path(sys.argv[1]))
    print("done", flush=True)
"""


@pytest.mark.slow
def test_kill_9_during_backup_leaves_only_complete_verified_backups(
    make_settings: SettingsFactory, backup_dir: Path
) -> None:
    import os
    import random

    from tests.helpers import settings_env

    settings = make_settings()
    env = {**os.environ, **settings_env(settings)}
    rng = random.Random(int(os.environ.get("KILL_SEED", time.time())))
    with Stores(settings) as stores:
        insert_candles(stores.engine("market"), 0, 30_000)
        started = time.perf_counter()  # calibrate: kills land within one backup's time
        backup.create_backup(stores, "market", "daily", backup_dir)
        window = 2 * (time.perf_counter() - started)
        finished = 1
        for _trial in range(6):
            victim = subprocess.Popen(
                [sys.executable, "-c", BACKUPPER, str(backup_dir)],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert victim.stdout is not None
            assert victim.stdout.readline().strip() == "started"
            time.sleep(rng.uniform(0.0, window))
            victim.kill()
            finished += "done" in victim.communicate()[0]
        complete = backup.list_backups(backup_dir)
        print(f"{finished - 1} of 6 backups finished before the kill, {len(complete)} complete")
        assert len(complete) >= finished
        for manifest in complete:
            assert backup.verify_backup(stores, manifest.id, backup_dir).ok
        backup.remove_leftovers(backup_dir, older_than_seconds=0)
        names = {p.name for p in backup_dir.iterdir()} if backup_dir.exists() else set()
        expected = {n for m in complete for n in (m.file, f"{m.id}.json")}
        assert names == expected
        assert count_rows(stores.engine("market"), "time_series") == 30_000
