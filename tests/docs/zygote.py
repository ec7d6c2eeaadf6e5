"""Start-up cost paid once: a process that imports ``cryptotrading`` and then forks one
child per ``cryptotrading`` command (or per Python session) of the docs test.

Importing the package (SQLAlchemy, pandas, Alembic, ccxt ...) takes 1-3 s, longer than
most documented commands themselves. The docs test therefore puts a small client named
``cryptotrading`` first on ``PATH``: it hands its arguments, environment, working
directory and its stdin/stdout/stderr (the file descriptors themselves, over a Unix
socket) to this server, which forks; the child takes over those descriptors and runs
the console-script entry point, ``cryptotrading.cli:main``, exactly as the installed
script does; the client exits with the child's exit code. Set
``CRYPTOTRADING_DOCS_NO_ZYGOTE=1`` to run the installed script and a plain Python
process instead (slower, same results).

    python -m tests.docs.zygote SOCKET          serve (prints "ready" when listening)
    python -m tests.docs.zygote --session       one Python session on stdin, no server
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

RESULT_FD = 3
"""In a forked Python session, the descriptor of its JSON result lines."""

CLIENT = """\
#!{python} -IS
import json, os, socket, sys
request = json.dumps({{"mode": {mode!r}, "argv": sys.argv[1:], "env": dict(os.environ),
                      "cwd": os.getcwd()}}).encode()
fds = [0, 1, 2] + ([int(os.environ["DOCS_RESULT_FD"])] if {mode!r} == "python" else [])
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
    sock.connect({socket!r})
    socket.send_fds(sock, [len(request).to_bytes(4, "big") + request], fds)
    reply = b""
    while chunk := sock.recv(64):
        reply += chunk
sys.exit(int(reply or b"1"))
"""


def write_client(path: Path, socket_path: Path, mode: str) -> None:
    """An executable client at *path* that runs *mode* (``cli`` or ``python``) in the server."""
    path.write_text(CLIENT.format(python=sys.executable, mode=mode, socket=str(socket_path)))
    path.chmod(0o755)


def python_session(result_fd: int) -> None:
    """Execute blocks from stdin (JSON lines ``{"name", "line", "code", "env"}``) in one
    namespace, like one interpreter session; one ``{"ok", "error"}`` line each on
    *result_fd*."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    results = os.fdopen(result_fd, "w", encoding="utf-8")
    while line := sys.stdin.readline():
        request = json.loads(line)
        os.environ.clear()
        os.environ.update(request["env"])
        ok, error = True, ""
        try:
            # pad with blank lines so tracebacks name the line of the Markdown page
            source = "\n" * (request["line"] - 1) + request["code"]
            exec(compile(source, request["name"], "exec"), namespace)
        except BaseException:
            ok, error = False, traceback.format_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        results.write(json.dumps({"ok": ok, "error": error}) + "\n")
        results.flush()


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _flags, _address = socket.recv_fds(conn, 1 << 20, 4)
    size = int.from_bytes(data[:4], "big")
    while len(data) < 4 + size:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    return json.loads(data[4 : 4 + size]), fds


def _exit_code(stop: SystemExit) -> int:
    if stop.code is None or isinstance(stop.code, int):
        return stop.code or 0
    print(stop.code, file=sys.stderr)
    return 1


def _child(request: dict[str, Any], fds: list[int]) -> None:
    """Become the requested process and exit with its code; never returns.

    The exit runs the ``atexit`` handlers and flushes the streams like a normal exit,
    then skips the interpreter's teardown of every imported module (about a second
    here, and nothing a command depends on)."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd >= len(fds):
            os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    code = 0
    try:
        if request["mode"] == "python":
            sys.argv = ["python"]
            python_session(RESULT_FD)
        else:
            from cryptotrading.cli import main

            sys.argv = ["cryptotrading", *request["argv"]]
            main()
    except SystemExit as stop:
        code = _exit_code(stop)
    except BaseException:
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _log_cpu(request: dict[str, Any], seconds: float) -> None:
    """With ``CRYPTOTRADING_DOCS_CPU_LOG`` set (for the server), append the CPU seconds
    of each child: how much the examples cost, whatever the machine's load."""
    log = os.environ.get("CRYPTOTRADING_DOCS_CPU_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{seconds:.3f}\t{request['mode']}\t{' '.join(request['argv'])}\n")


def _warm_up() -> None:
    """Import the package, render the help once (Rich and Typer load parts lazily) and
    load the native read loop, so that every child inherits them."""
    import contextlib
    import io

    from cryptotrading.cli import main

    sys.argv = ["cryptotrading", "--help"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main()
    try:  # the compiled loop of large SQLite reads (~0.4 s to load in each process)
        from cryptotrading.market import native_read

        native_read.available()
    except ImportError:
        pass


def serve(socket_path: str) -> None:
    """Accept requests; each runs in a forked child, watched by a forked waiter that
    reports its exit code, so a Python session and commands can run at the same time."""
    _warm_up()

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # waiters are reaped automatically
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(8)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        request, fds = _receive(conn)
        if os.fork() == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            listener.close()
            pid = os.fork()
            if pid == 0:
                conn.close()
                _child(request, fds)
            for fd in fds:
                os.close(fd)
            _, status, usage = os.wait4(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            _log_cpu(request, usage.ru_utime + usage.ru_stime)
            conn.sendall(str(code if code >= 0 else 128 - code).encode())
            os._exit(0)
        for fd in fds:
            os.close(fd)
        conn.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["--session"]:
        python_session(int(os.environ["DOCS_RESULT_FD"]))
    else:
        serve(sys.argv[1])
