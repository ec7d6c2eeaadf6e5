#!/usr/bin/env python3
"""Every developer task with nothing but Python 3.11 installed.

    python3 dev.py run     create .venv, initialise ./data and run the main job
    python3 dev.py test    create .venv, lint (ruff, mypy) and run the whole test suite
    python3 dev.py lint    ruff and mypy only
    python3 dev.py bench   the benchmarks under bench/

Extra arguments after ``test`` go to pytest (``python3 dev.py test -k vault``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".installed"


def sh(*command: str | Path) -> None:
    print("+", " ".join(str(part) for part in command), flush=True)
    completed = subprocess.run([str(part) for part in command], cwd=ROOT, check=False)
    if completed.returncode != 0:
        sys.exit(completed.returncode)


def ensure_venv() -> None:
    """Create .venv and install the project with its dev extras when pyproject changed."""
    if not (BIN / "python").exists():
        venv.create(VENV, with_pip=True)
    pyproject = ROOT / "pyproject.toml"
    if STAMP.exists() and STAMP.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    sh(BIN / "python", "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(BIN / "python", "-m", "pip", "install", "-q", "-e", ".[dev]")
    STAMP.touch()


def lint() -> None:
    sh(BIN / "ruff", "check", "src", "tests", "bench", "scripts", "dev.py")
    sh(BIN / "ruff", "format", "--check", "src", "tests", "bench", "scripts", "dev.py")
    sh(BIN / "mypy")


def main(argv: list[str]) -> None:
    task, *rest = argv or ["help"]
    if task not in ("run", "test", "lint", "bench"):
        print(__doc__)
        sys.exit(0 if task == "help" else 2)
    ensure_venv()
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    if task == "run":
        cli = BIN / "cryptotrading"
        sh(cli, "init")
        sh(cli, "db", "check")
        sh(cli, "db", "info")
    elif task == "lint":
        lint()
    elif task == "test":
        lint()
        sh(BIN / "pytest", *rest)
    elif task == "bench":
        for script in sorted((ROOT / "bench").glob("bench_*.py")):
            sh(BIN / "python", script, *rest)


if __name__ == "__main__":
    main(sys.argv[1:])
