"""Run the runnable blocks of one page in order, in a fresh directory, like a reader
following the page in one terminal and one Python interpreter.

Each page gets ``<tmp>/work`` as working directory with the data dir ``work/data``
(``CRYPTOTRADING_DATA_DIR``), ``<tmp>/shared`` linking to the shared data (so the
documented ``../shared/data/market/...`` paths work), ``HOME=<tmp>/home`` and the venv's
``bin`` first on ``PATH``. Bash blocks run with ``set -euo pipefail``; the variables they
export carry over to later blocks (bash and Python) and the functions they define to
later bash blocks. Python blocks share one namespace.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tests.docs.markdown import Block
from tests.docs.zygote import write_client
from tests.helpers import ROOT, SHARED_DIR

VENV_BIN = Path(sys.executable).parent
BLOCK_TIMEOUT = 300.0
NO_ZYGOTE = os.environ.get("CRYPTOTRADING_DOCS_NO_ZYGOTE", "") not in ("", "0")


class BlockFailed(AssertionError):
    """A runnable block exited non-zero or raised."""


@contextmanager
def zygote(directory: Path) -> Iterator[Path | None]:
    """A running zygote server and a directory holding its ``cryptotrading`` and
    ``docs-python`` clients (None when ``CRYPTOTRADING_DOCS_NO_ZYGOTE`` is set)."""
    if NO_ZYGOTE:
        yield None
        return
    # Unix socket paths are limited to ~100 bytes: keep it short
    socket_dir = Path(tempfile.mkdtemp(prefix="ctdocs-"))
    socket_path = socket_dir / "s"
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    write_client(bin_dir / "cryptotrading", socket_path, "cli")
    write_client(bin_dir / "docs-python", socket_path, "python")
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONPATH": pythonpath}
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.docs.zygote", str(socket_path)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("the docs zygote did not start")
        yield bin_dir
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the server and every child it forked
        server.wait()
        socket_path.unlink(missing_ok=True)
        socket_dir.rmdir()


class PageSession:
    """One terminal and one Python interpreter, in a fresh directory, for one page."""

    def __init__(self, tmp: Path, client_bin: Path | None) -> None:
        if not SHARED_DIR.is_dir():
            raise FileNotFoundError(
                f"the docs use ../shared/data/market: {SHARED_DIR} not found;"
                " set CRYPTOTRADING_SHARED_DIR"
            )
        self.work = tmp / "work"
        self.work.mkdir()
        (tmp / "home").mkdir()
        (tmp / "shared").symlink_to(SHARED_DIR.resolve(), target_is_directory=True)
        self.client_bin = client_bin
        self.log = tmp / "python.log"
        self._env_file = tmp / "env"
        self._python: subprocess.Popen[str] | None = None
        self._results: IO[str] | None = None
        path = [str(VENV_BIN), os.environ.get("PATH", "/usr/bin:/bin")]
        if client_bin is not None:
            path.insert(0, str(client_bin))
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOTRADING_")}
        for name in ("PYTEST_CURRENT_TEST", "PYTHONPATH", "VIRTUAL_ENV"):
            inherited.pop(name, None)
        self.env = {
            **inherited,
            "HOME": str(tmp / "home"),
            "PATH": os.pathsep.join(path),
            "CRYPTOTRADING_DATA_DIR": str(self.work / "data"),
            "CRYPTOTRADING_SHARED_DIR": str(SHARED_DIR.resolve()),
            "PYTHONIOENCODING": "utf-8",
            "COLUMNS": "120",
        }

    def run(self, block: Block) -> None:
        if block.language == "bash":
            self._bash(block)
        elif block.language == "python":
            self._python_block(block)
        else:
            raise BlockFailed(f"{block.where()}: cannot run a {block.language!r} block")

    def _bash(self, block: Block) -> None:
        functions = self._env_file.with_suffix(".functions")
        script = (
            f'[ -f "{functions}" ] && source "{functions}"\nset -euo pipefail\n{block.code}\n'
            f'env -0 > "{self._env_file}"\ndeclare -f > "{functions}"\n'
        )
        completed = subprocess.run(
            ["bash", "-c", script],
            cwd=self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
        if completed.returncode != 0:
            raise BlockFailed(
                f"{block.where()}: bash block exited {completed.returncode}\n"
                f"--- block\n{block.code}--- stdout\n{completed.stdout}"
                f"--- stderr\n{completed.stderr}"
            )
        exported = self._env_file.read_text().split("\0")
        self.env = dict(item.split("=", 1) for item in exported if "=" in item)
        self.env.pop("OLDPWD", None)

    def _start_python(self) -> tuple[subprocess.Popen[str], IO[str]]:
        read_end, write_end = os.pipe()
        env = {**self.env, "DOCS_RESULT_FD": str(write_end), "PYTHONPATH": str(ROOT)}
        command = [str(self.client_bin / "docs-python")] if self.client_bin else None
        if command is None:
            command = [str(VENV_BIN / "python"), "-m", "tests.docs.zygote", "--session"]
        with self.log.open("w") as log:
            process = subprocess.Popen(
                command,
                cwd=self.work,
                env=env,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_end,),
                text=True,
            )
        os.close(write_end)
        return process, os.fdopen(read_end, "r", encoding="utf-8")

    def _python_block(self, block: Block) -> None:
        if self._python is None:
            self._python, self._results = self._start_python()
        assert self._python.stdin is not None and self._results is not None
        offset = self.log.stat().st_size
        request = {"name": str(block.page), "line": block.line, "code": block.code}
        self._python.stdin.write(json.dumps({**request, "env": self.env}) + "\n")
        self._python.stdin.flush()
        deadline = time.monotonic() + BLOCK_TIMEOUT
        ready: list[object] = []
        while not ready and time.monotonic() < deadline:
            ready, _, _ = select.select([self._results], [], [], 1.0)
            if not ready and self._python.poll() is not None:
                break
        line = self._results.readline() if ready else ""
        result = json.loads(line) if line else {"ok": False, "error": "no result (timeout?)"}
        if not result["ok"]:
            with self.log.open() as log:
                log.seek(offset)
                output = log.read()
            raise BlockFailed(
                f"{block.where()}: python block failed\n--- block\n{block.code}"
                f"--- output\n{output}--- error\n{result['error']}"
            )

    def close(self) -> None:
        if self._python is not None:
            assert self._python.stdin is not None
            self._python.stdin.close()
            try:
                self._python.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._python.kill()
                self._python.wait()
        if self._results is not None:
            self._results.close()
