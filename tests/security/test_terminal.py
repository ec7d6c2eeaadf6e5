"""On a real terminal the password and the exchange secrets are prompted without echo."""

from __future__ import annotations

import os
import pty
import select
import sys
import termios
import time

from tests.helpers import ROOT, SettingsFactory, settings_env
from tests.security.helpers import PASSWORD

SECRET = "terminalSECRET-4f1c9a7e2b"
API_KEY = "terminalKEY-8d2e6b0c1a"


def _run_in_terminal(args: list[str], answers: list[tuple[str, str]], env: dict[str, str]) -> str:
    """Run the CLI on a pseudo-terminal, answering each prompt; everything it showed."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the CLI with the pty as its controlling terminal
        code = "from cryptotrading.cli import main; main()"
        os.execve(sys.executable, [sys.executable, "-c", code, *args], env)
    seen = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        prompted = pending and pending[0][0].encode() in seen.rsplit(b"\n", 1)[-1]
        if prompted and not termios.tcgetattr(fd)[3] & termios.ECHO:  # typed once echo is off
            os.write(fd, (pending.pop(0)[1] + "\n").encode())
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert not pending, seen
    assert os.waitstatus_to_exitcode(status) == 0, seen
    return seen.decode(errors="replace")


def test_prompts_do_not_echo_secrets(make_settings: SettingsFactory) -> None:
    env = {
        **os.environ,
        **settings_env(make_settings("three")),
        "CRYPTOTRADING_MASTER_KEY": "terminal-master-secret-0123456789",
        "PYTHONPATH": str(ROOT),
        "TERM": "dumb",
    }
    env.pop("CRYPTOTRADING_MASTER_KEY_FILE", None)
    shown = _run_in_terminal(
        ["users", "add", "alice", "--email", "alice@example.com"],
        [("Password:", PASSWORD), ("confirmation:", PASSWORD)],
        env,
    )
    assert "created user alice" in shown and PASSWORD not in shown
    shown = _run_in_terminal(
        ["vault", "add", "--user", "alice", "--service", "binance"],
        [("API key:", API_KEY), ("API secret:", SECRET)],
        env,
    )
    assert "stored binance credential" in shown
    assert SECRET not in shown and API_KEY not in shown
