#!/usr/bin/env python3
"""Every developer task with nothing but Python 3.11 installed.

    python3 dev.py run     create .venv, initialise ./data and run the main job
    python3 dev.py test    create .venv, lint (ruff, mypy) and run the whole test suite
    python3 dev.py test --fast   the same without the tests marked slow (local loops)
    python3 dev.py lint    ruff and mypy only
    python3 dev.py bench   the benchmarks under bench/
    python3 dev.py fuzz    the CLI fuzz suite (tests/fuzz) with 500 random examples per test

Extra arguments after ``test`` or ``fuzz`` go to pytest (``python3 dev.py test -k vault``);
``CRYPTOTRADING_FUZZ_EXAMPLES=2000 python3 dev.py fuzz`` changes the example count.
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


def main_job(cli: Path) -> None:
    """Initialise ./data, load the real market data shipped beside the repo (when
    present), measure its quality, back it up, check and describe every store."""
    sh(cli, "init")
    market = Path(os.environ.get("CRYPTOTRADING_SHARED_DIR", ROOT.parent / "shared"))
    market = market / "data" / "market"
    binance = market / "binance_nfi_2020-12_2021-07"
    if binance.is_dir():
        for pair, timeframe in (("BTC_USDT", "1h"), ("ETH_USDT", "1h"), ("BTC_USDT", "5m")):
            symbol = pair.replace("_", "/")
            sh(
                cli,
                "market",
                "import",
                binance / f"{pair}-{timeframe}.json",
                "--symbol",
                symbol,
                "--timeframe",
                timeframe,
                "--exchange",
                "binance",
            )
        sh(
            cli,
            "market",
            "show",
            "BTC/USDT",
            "--timeframe",
            "1d",
            "--exchange",
            "binance",
            "--start",
            "2021-07-10",
        )
        # calendar months, resampled from the stored 1h candles (the coarsest that tiles them)
        sh(cli, "market", "show", "BTC/USDT", "--timeframe", "1M", "--exchange", "binance")
        sh(cli, "market", "gaps", "BTC/USDT", "--timeframe", "1h", "--exchange", "binance")
        sh(cli, "market", "quality")
    fear_greed = market / "sentiment" / "CRYPTO_FNG_INDEX.csv"
    if fear_greed.is_file():
        sh(cli, "services", "sentiment", "import", fear_greed)
    sh(cli, "replicate")  # one incremental pass into rex.db
    sh(cli, "replicate", "status")
    sh(cli, "backup", "create", "--store", "app")
    sh(cli, "db", "check")
    sh(cli, "db", "info")


def lint() -> None:
    sh(BIN / "ruff", "check", "src", "tests", "bench", "scripts", "dev.py")
    sh(BIN / "ruff", "format", "--check", "src", "tests", "bench", "scripts", "dev.py")
    sh(BIN / "mypy")


def main(argv: list[str]) -> None:
    task, *rest = argv or ["help"]
    if task not in ("run", "test", "lint", "bench", "fuzz"):
        print(__doc__)
        sys.exit(0 if task == "help" else 2)
    ensure_venv()
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    if task == "run":
        main_job(BIN / "cryptotrading")
    elif task == "lint":
        lint()
    elif task == "test":
        lint()
        fast = ["-m", "not slow"] if "--fast" in rest else []  # skip the long trials
        rest = [arg for arg in rest if arg != "--fast"]
        parallel = [] if any(arg.startswith("-n") for arg in rest) else ["-n", "auto"]
        sh(BIN / "pytest", *parallel, *fast, *rest)
    elif task == "fuzz":
        os.environ.setdefault("CRYPTOTRADING_FUZZ_EXAMPLES", "500")
        os.environ.setdefault("CRYPTOTRADING_FUZZ_RANDOM", "1")
        parallel = [] if any(arg.startswith("-n") for arg in rest) else ["-n", "auto"]
        sh(BIN / "pytest", "-m", "fuzz", *parallel, *rest)
    elif task == "bench":
        for script in sorted((ROOT / "bench").glob("bench_*.py")):
            sh(BIN / "python", script, *rest)


if __name__ == "__main__":
    main(sys.argv[1:])
