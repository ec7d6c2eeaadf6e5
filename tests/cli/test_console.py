"""The installed console script in a real shell-like setting: empty directories,
the spec's literal sqlite3 maintenance commands, read-only data dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptotrading.models import SCHEMA_VERSIONS
from tests.helpers import SettingsFactory, invoke, settings_env

CLI = str(Path(sys.executable).with_name("cryptotrading"))


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOTRADING_")}
    return subprocess.run(
        [CLI, *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )


@pytest.mark.parametrize(
    "layout",  # each a full migration in a subprocess: the other layouts only in slow runs
    [
        "three",
        pytest.param("two", marks=pytest.mark.slow),
        pytest.param("single", marks=pytest.mark.slow),
    ],
)
def test_init_and_check_in_an_empty_directory(
    make_settings: SettingsFactory, tmp_path: Path, layout: str
) -> None:
    settings = make_settings(layout, migrated=False)
    env = settings_env(settings)
    env.pop("CRYPTOTRADING_DATA_DIR")  # the default: ./data in the working directory
    workdir = tmp_path / "empty"
    workdir.mkdir()
    init = run("init", cwd=workdir, env=env)
    assert init.returncode == 0, init.stderr
    check = run("db", "check", cwd=workdir, env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    if settings.app_url is None:
        files = sorted(p.name for p in (workdir / "data").glob("*.db"))
        expected = {
            "three": ["cryptotrading.db", "real_market_data.db", "rex.db"],
            "two": ["app.db", "market.db"],
            "single": ["main.db"],
        }
        assert files == expected[layout]
        assert (workdir / "data").stat().st_mode & 0o077 == 0
        assert all((workdir / "data" / f).stat().st_mode & 0o077 == 0 for f in files)


def test_spec_maintenance_commands_work_on_our_files(tmp_path: Path) -> None:
    """The spec's literal ``sqlite3 data/cryptotrading.db ...`` commands."""
    sqlite3 = shutil.which("sqlite3")
    assert sqlite3, "the sqlite3 command-line shell is required (apt-get install sqlite3)"
    assert run("init", cwd=tmp_path).returncode == 0
    db = "data/cryptotrading.db"

    def shell(*args: str) -> str:
        done = subprocess.run(
            [sqlite3, *args], cwd=tmp_path, capture_output=True, text=True, check=True
        )
        return done.stdout

    for name in ("cryptotrading.db", "real_market_data.db", "rex.db"):
        assert shell(f"data/{name}", "PRAGMA integrity_check").strip() == "ok"
    shell(db, "VACUUM; ANALYZE")
    schema = shell(db, ".schema")
    assert (
        "CREATE TABLE users" in schema
        and "CREATE TABLE IF NOT EXISTS" not in schema.split("users")[0][-30:]
    )
    shell(db, ".backup backup.db")
    assert shell("backup.db", "SELECT count(*) FROM schema_versions").strip() == str(
        len(SCHEMA_VERSIONS)
    )
    assert run("db", "check", cwd=tmp_path).returncode == 0


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody, root included, can create files in (immutable attribute,
    or a read-only tmpfs mount); permission bits alone do not stop root."""
    path = tmp_path / "data"
    path.mkdir()
    if (
        subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode
        == 0
    ):
        yield path
        subprocess.run(["chattr", "-i", str(path)], check=False)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("cannot make a read-only directory here (no chattr +i, no mount)")
    yield path
    subprocess.run(["umount", str(path)], check=False)


def test_read_only_data_dir_is_a_clear_error(read_only_dir: Path) -> None:
    result = run("init", cwd=read_only_dir.parent)
    assert result.returncode == 2, result.stderr
    assert "not writable" in result.stderr and "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(read_only_dir.iterdir()) == []


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    result = run("init", cwd=tmp_path)
    assert result.returncode == 2
    assert "is not a directory" in result.stderr
    assert (tmp_path / "data").read_text() == "not a directory"


def test_stored_text_is_printed_as_it_is_never_as_markup(make_settings: SettingsFactory) -> None:
    """A name that looks like rich markup is stored, listed and shown literally
    (regression: ``[/x]`` crashed every later ``models list`` with a traceback)."""
    env = settings_env(make_settings("three"))
    invoke(env, "models", "register", "[/x]", "1.0.0", code=0)
    listed = invoke(env, "models", "list", code=0)
    assert "[/x]" in listed.stdout and "Traceback" not in listed.stdout + listed.stderr
