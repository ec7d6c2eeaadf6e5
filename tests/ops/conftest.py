"""Fixtures and helpers of the operations tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cryptotrading.settings import Settings
from tests.conftest import ROOT, settings_env

CLI = "from cryptotrading.cli import main; main()"


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups"


def run_cli(
    settings: Settings,
    *args: str,
    prefix: tuple[str, ...] = (),
    preexec: Callable[[], None] | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cryptotrading ARGS`` in a subprocess on the stores of *settings*
    (*prefix*: a wrapper such as ``setpriv ...``; *preexec*: e.g. set a resource limit)."""
    env = {**os.environ, **settings_env(settings), **(extra_env or {})}
    return subprocess.run(
        [*prefix, sys.executable, "-c", CLI, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec,
        check=False,
    )
