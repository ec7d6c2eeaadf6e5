"""Fixtures and helpers of the operations tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class Invoked:
    """The outcome of an in-process CLI call, shaped like a CompletedProcess."""

    returncode: int
    stdout: str
    stderr: str


def invoke(settings: Settings, *args: str, extra_env: dict[str, str] | None = None) -> Invoked:
    """Run ``cryptotrading ARGS`` in this process (fast; no interpreter start-up)."""
    from typer.testing import CliRunner

    from cryptotrading.cli import app

    env = {**settings_env(settings), **(extra_env or {})}
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Invoked(result.exit_code, result.stdout, result.stderr)
