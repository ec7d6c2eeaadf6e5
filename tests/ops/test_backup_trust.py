"""Backups are trusted only when they should be: signed manifests, the store's
schema lineage, no restore under a live writer, private and cleaned-up partial files."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cryptotrading.errors import (
    ConfigurationError,
    NotFoundError,
    StoreBusyError,
    ValidationError,
)
from cryptotrading.ops import backup, backup_signing, backup_sqlite
from cryptotrading.stores import Stores
from tests.helpers import ROOT, SettingsFactory, count_rows, invoke, settings_env
from tests.ops.helpers import drop_pg, fill, insert_candles, start_writer


def _edit(backup_dir: Path, backup_id: str, **changes: object) -> None:
    path = backup_dir / f"{backup_id}.json"
    data = json.loads(path.read_text())
    for name, value in changes.items():
        if value is _DROP:
            data.pop(name, None)
        else:
            data[name] = value
    path.write_text(json.dumps(data))


_DROP = object()


def _app_fingerprint(stores: Stores) -> tuple[int, int]:
    return count_rows(stores.engine("app"), "users"), count_rows(
        stores.engine("app"), "system_metrics"
    )


def _cleanup_aside(stores: Stores, restored: backup.Restored) -> None:
    if stores.get(restored.store).path is None and restored.kept_aside:
        drop_pg(stores.get(restored.store).url, restored.kept_aside)


def test_init_creates_an_owner_only_key_outside_the_backup_directory(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings()
    with Stores(settings) as stores:
        from cryptotrading.ops.lifecycle import initialize

        initialize(stores)
        key = backup_signing.key_path(settings)
        assert key == settings.data_dir / "backup.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        before = key.read_bytes()
        initialize(stores)  # idempotent: the key is never replaced
        assert key.read_bytes() == before
        manifest = backup.create_backup(stores, "app", "daily", tmp_path / "backups")
        assert manifest.signature.startswith("hmac-sha256:")
        with pytest.raises(ConfigurationError, match="inside the backup directory"):
            backup.create_backup(stores, "app", "daily", settings.data_dir)


@pytest.mark.parametrize("field", ["store", "row_counts", "created_at", "sha256"])
def test_any_edit_of_a_signed_manifest_is_detected_and_nothing_restored(
    stores: Stores, backup_dir: Path, field: str
) -> None:
    """The reported attack: a market backup relabelled ``"store": "app"``."""
    fill(stores, 300, 12)
    manifest = backup.create_backup(stores, "market", "daily", backup_dir)
    edits: dict[str, object] = {
        "store": "app",
        "row_counts": {"time_series": 301},
        "created_at": "2020-01-01T00:00:00+00:00",
        "sha256": "0" * 64,
    }
    _edit(backup_dir, manifest.id, **{field: edits[field]})
    before = _app_fingerprint(stores)

    result = backup.verify_backup(stores, manifest.id, backup_dir)
    assert not result.ok
    assert [c.name for c in result.checks] == ["signature"]
    assert "altered" in result.failures()
    for allow_unsigned in (False, True):
        with pytest.raises(ValidationError, match="does not authenticate"):
            backup.restore_backup(stores, manifest.id, backup_dir, allow_unsigned=allow_unsigned)
    assert _app_fingerprint(stores) == before
    [(listed, trust)] = backup.describe_backups(stores.settings, backup_dir)
    assert listed.id == manifest.id and trust == "altered"


def test_an_unsigned_manifest_of_another_store_fails_the_lineage_check(
    stores: Stores, backup_dir: Path
) -> None:
    """Even accepted as unsigned, a market database is not restored into the app store."""
    fill(stores, 300, 12)
    manifest = backup.create_backup(stores, "market", "daily", backup_dir)
    _edit(backup_dir, manifest.id, store="app", signature=_DROP)
    before = _app_fingerprint(stores)
    with pytest.raises(ValidationError, match="is unsigned"):
        backup.restore_backup(stores, manifest.id, backup_dir)
    with pytest.raises(ValidationError, match="lineage: not a database of store 'app'"):
        backup.restore_backup(stores, manifest.id, backup_dir, allow_unsigned=True)
    result = backup.verify_backup(stores, manifest.id, backup_dir, allow_unsigned=True)
    assert not next(c for c in result.checks if c.name == "lineage").ok
    assert _app_fingerprint(stores) == before
    if stores.app.path is not None:
        assert not list(stores.app.path.parent.glob("*.pre-restore-*"))


def test_lineage_check_names_missing_tables_and_unknown_versions() -> None:
    from cryptotrading.ops import backup_lineage

    partial = backup_lineage.Contents({"app": "2.0.0"}, {}, frozenset(["users"]))
    [problem] = backup_lineage.problems(partial, ("app",))
    assert "missing" in problem and "users" not in problem
    assert not backup_lineage.problems(
        backup_lineage.Contents(
            {"app": "1.0.0"}, {}, frozenset(backup_lineage.expected_tables("app", "1.0.0"))
        ),
        ("app",),
    )
    unknown = backup_lineage.Contents({"app": "9.9.9"}, {}, frozenset())
    assert "unknown to this release" in backup_lineage.problems(unknown, ("app",))[0]
    assert backup_lineage.store_lineages("main") == ("app", "market")
    assert backup_lineage.store_lineages("nope") is None


def test_legacy_unsigned_backup_is_listed_and_restores_only_with_allow_unsigned(
    make_settings: SettingsFactory, backup_dir: Path
) -> None:
    settings = make_settings()
    with Stores(settings) as stores:
        fill(stores, 300, 12)
        manifest = backup.create_backup(stores, "market", "daily", backup_dir)
        insert_candles(stores.engine("market"), 300, 5)
    _edit(backup_dir, manifest.id, signature=_DROP)  # as written before signing existed

    listed = invoke(settings, "backup", "list", "--json", "--dir", str(backup_dir))
    [entry] = json.loads(listed.stdout)
    assert entry["signed"] is False and entry["authenticity"] == "unsigned"
    shown = invoke(settings, "backup", "list", "--dir", str(backup_dir))
    assert "unsigned" in shown.stdout

    verified = invoke(settings, "backup", "verify", manifest.id, "--json", "--dir", str(backup_dir))
    assert verified.exit_code == 1
    failed = [c["name"] for c in json.loads(verified.stdout)["checks"] if not c["ok"]]
    assert failed == ["signature"]  # the content itself is fine
    refused = invoke(settings, "backup", "restore", manifest.id, "--dir", str(backup_dir))
    assert refused.exit_code == 5 and "--allow-unsigned" in refused.stderr
    assert "Traceback" not in refused.stderr
    restored = invoke(
        settings, "backup", "restore", manifest.id, "--allow-unsigned", "--json",
        "--dir", str(backup_dir),
    )  # fmt: skip
    assert restored.exit_code == 0, restored.stderr
    with Stores(settings) as stores:
        assert count_rows(stores.engine("market"), "time_series") == 300
        kept = json.loads(restored.stdout)["kept_aside"]
        if stores.market.path is None:
            drop_pg(stores.market.url, kept)


def test_lost_key_is_named_and_a_saved_copy_or_allow_unsigned_restores(
    make_settings: SettingsFactory, backup_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings()
    with Stores(settings) as stores:
        fill(stores, 300, 12)
        manifest = backup.create_backup(stores, "market", "daily", backup_dir)
    key = backup_signing.key_path(settings)
    saved = tmp_path / "saved.key"
    saved.write_bytes(key.read_bytes())
    saved.chmod(0o600)
    key.unlink()  # the data directory was lost

    with Stores(settings) as stores:
        with pytest.raises(NotFoundError, match=r"backup key .* is missing") as caught:
            backup.restore_backup(stores, manifest.id, backup_dir)
        assert "CRYPTOTRADING_BACKUP_KEY_FILE" in caught.value.hint
        assert "--allow-unsigned" in caught.value.hint
        assert backup.describe_backups(settings, backup_dir)[0][1] == "key missing"
        verification = backup.verify_backup(stores, manifest.id, backup_dir)
        assert not verification.ok and "missing" in verification.failures()
    cli = invoke(settings, "backup", "restore", manifest.id, "--dir", str(backup_dir))
    assert cli.exit_code == 6 and "hint:" in cli.stderr and "Traceback" not in cli.stderr

    with Stores(settings.model_copy(update={"backup_key_file": saved})) as stores:
        assert backup.verify_backup(stores, manifest.id, backup_dir).ok
        restored = backup.restore_backup(stores, manifest.id, backup_dir)
        _cleanup_aside(stores, restored)
    with Stores(settings) as stores:
        restored = backup.restore_backup(stores, manifest.id, backup_dir, allow_unsigned=True)
        assert any(
            "accepted with --allow-unsigned" in c.detail for c in restored.verification.checks
        )
        _cleanup_aside(stores, restored)

    saved.chmod(0o644)
    with (
        Stores(settings.model_copy(update={"backup_key_file": saved})) as stores,
        pytest.raises(ConfigurationError, match="accessible by other users"),
    ):
        backup.restore_backup(stores, manifest.id, backup_dir, allow_unsigned=True)


def test_backups_signed_with_a_replaced_key_need_the_old_key_or_allow_unsigned(
    stores: Stores, backup_dir: Path, tmp_path: Path
) -> None:
    """The data dir was re-initialised: a new key, older backups signed with the old one."""
    fill(stores, 300, 12)
    manifest = backup.create_backup(stores, "market", "daily", backup_dir)
    key = backup_signing.key_path(stores.settings)
    old = tmp_path / "old.key"
    key.rename(old)
    backup_signing.ensure_key(stores.settings)  # what `init` does on a fresh data dir
    assert backup.describe_backups(stores.settings, backup_dir)[0][1] == "other key"
    with pytest.raises(ValidationError, match="cannot be authenticated") as caught:
        backup.restore_backup(stores, manifest.id, backup_dir)
    assert "CRYPTOTRADING_BACKUP_KEY_FILE" in caught.value.hint
    result = backup.verify_backup(stores, manifest.id, backup_dir)
    assert [c.name for c in result.checks if not c.ok] == ["signature"]
    with Stores(stores.settings.model_copy(update={"backup_key_file": old})) as with_old:
        assert backup.describe_backups(with_old.settings, backup_dir)[0][1] == "valid"
        assert backup.verify_backup(with_old, manifest.id, backup_dir).ok
    restored = backup.restore_backup(stores, manifest.id, backup_dir, allow_unsigned=True)
    assert count_rows(stores.engine("market"), "time_series") == 300
    _cleanup_aside(stores, restored)


# --- a concurrent writer ------------------------------------------------------------

BATCH = 25


def _stop(writer: subprocess.Popen[str]) -> None:
    writer.kill()
    writer.wait()


@pytest.mark.slow
def test_restore_while_another_process_writes_is_refused_and_no_row_is_lost(
    make_settings: SettingsFactory, backup_dir: Path
) -> None:
    settings = make_settings()
    with Stores(settings) as stores:
        insert_candles(stores.engine("market"), 0, 1000, "BASE/USDT")
        manifest = backup.create_backup(stores, "market", "daily", backup_dir)
        writer = start_writer(stores.market.url, BATCH)
        try:
            time.sleep(0.2)
            with pytest.raises(StoreBusyError, match="nothing was restored"):
                backup.restore_backup(stores, manifest.id, backup_dir)
            time.sleep(0.2)
        finally:
            _stop(writer)
        written = count_rows(stores.engine("market"), "time_series") - 1000
        assert written > 0 and written % BATCH == 0  # every committed batch is still there
        if stores.market.path is not None:
            assert not list(stores.market.path.parent.glob("*.pre-restore-*"))
            assert not list(stores.market.path.parent.glob("*.partial"))
        # Once the writer is gone, the same restore goes through.
        restored = backup.restore_backup(stores, manifest.id, backup_dir)
        assert count_rows(stores.engine("market"), "time_series") == 1000
        _cleanup_aside(stores, restored)


@pytest.mark.slow
def test_force_restores_while_another_process_writes(
    make_settings: SettingsFactory, backup_dir: Path
) -> None:
    settings = make_settings()
    with Stores(settings) as stores:
        insert_candles(stores.engine("market"), 0, 500, "BASE/USDT")
        manifest = backup.create_backup(stores, "market", "daily", backup_dir)
        writer = start_writer(stores.market.url, BATCH)
        try:
            time.sleep(0.2)
            restored = backup.restore_backup(stores, manifest.id, backup_dir, force=True)
        finally:
            _stop(writer)
        assert restored.forced and restored.verification.ok
        from sqlalchemy import text

        with stores.engine("market").connect() as connection:
            base = connection.execute(
                text("SELECT count(*) FROM time_series WHERE symbol = 'BASE/USDT'")
            ).scalar_one()
        assert base == 500
        _cleanup_aside(stores, restored)


def _wal_database(tmp_path: Path) -> Path:
    live = tmp_path / "live.db"
    connection = sqlite3.connect(live)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE t (x INTEGER)")
    connection.commit()
    connection.close()
    return live


def test_sqlite_write_between_start_and_swap_is_detected(tmp_path: Path) -> None:
    """A process that writes and disconnects while the backup is being verified."""
    live = _wal_database(tmp_path)
    since = backup_sqlite.begin_restore(live, force=False)
    other = sqlite3.connect(live)
    other.execute("INSERT INTO t VALUES (1)")
    other.commit()
    staged = tmp_path / "staged.db"
    staged.write_bytes(live.read_bytes())
    with pytest.raises(StoreBusyError, match="written to while"):
        backup_sqlite.swap_in(staged, live, tmp_path / "aside.db", since=since)
    other.close()
    with pytest.raises(StoreBusyError, match="written to while"):
        backup_sqlite.swap_in(staged, live, tmp_path / "aside.db", since=since)
    assert not (tmp_path / "aside.db").exists()
    connection = sqlite3.connect(live)
    assert connection.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    connection.close()


def test_sqlite_open_connection_is_detected_even_when_idle(tmp_path: Path) -> None:
    live = _wal_database(tmp_path)
    assert not backup_sqlite.in_use(live)
    script = (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('SELECT count(*) FROM t').fetchone(); print('ready', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(live)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        assert backup_sqlite.in_use(live)
        with pytest.raises(StoreBusyError, match="has the database open"):
            backup_sqlite.begin_restore(live, force=False)
    finally:
        holder.kill()
        holder.wait()
    assert not backup_sqlite.in_use(live)


# --- partial files --------------------------------------------------------------------

BACKUPPER = """
import sys
from pathlib import Path
from cryptotrading.ops.backup import create_backup
from cryptotrading.settings import load_settings
from cryptotrading.stores import Stores
with Stores(load_settings()) as stores:
    create_backup(stores, "market", "daily", Path(sys.argv[1]))
"""


@pytest.mark.slow
def test_killed_backup_leaves_an_owner_only_partial_that_the_next_backup_removes(
    make_settings: SettingsFactory, backup_dir: Path
) -> None:
    settings = make_settings()
    env = {**os.environ, **settings_env(settings)}
    with Stores(settings) as stores:
        insert_candles(stores.engine("market"), 0, 60_000)
    backup_dir.mkdir(mode=0o700)
    old_umask = os.umask(0o022)
    try:
        victim = subprocess.Popen(
            [sys.executable, "-c", BACKUPPER, str(backup_dir)], cwd=ROOT, env=env
        )
        partials: list[Path] = []
        deadline = time.monotonic() + 60
        while not partials and time.monotonic() < deadline and victim.poll() is None:
            partials = list(backup_dir.glob("*.partial"))
            time.sleep(0.002)
        assert partials, "the backup finished before its partial file was seen"
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in partials if p.exists()}
        victim.kill()  # SIGKILL, mid-write
        victim.wait()
    finally:
        os.umask(old_umask)
    assert modes and set(modes.values()) == {0o600}, modes
    left = list(backup_dir.glob("*.partial*"))
    assert left, "the kill left nothing behind"
    assert {stat.S_IMODE(p.stat().st_mode) for p in left} == {0o600}
    with Stores(settings) as stores:
        made = backup.create_backup(stores, "market", "daily", backup_dir)
        assert {p.name for p in backup_dir.iterdir()} == {made.file, f"{made.id}.json"}
        assert backup.verify_backup(stores, made.id, backup_dir).ok


def test_leftover_cleanup_leaves_a_running_backup_alone(stores: Stores, backup_dir: Path) -> None:
    from cryptotrading.ops import backup_files

    backup_dir.mkdir()
    (backup_dir / "app-daily-x.db.gz.partial").write_bytes(b"half")
    with backup_files.in_use(backup_dir):  # as another backup process would
        assert backup.remove_leftovers(backup_dir) == []
        assert (backup_dir / "app-daily-x.db.gz.partial").exists()
    assert [p.name for p in backup.remove_leftovers(backup_dir)] == ["app-daily-x.db.gz.partial"]
