"""Fixtures of the operations tests (helpers: ``tests/ops/helpers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups"
