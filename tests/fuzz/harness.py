"""The fuzz property and its plumbing.

:meth:`Fuzzer.run` invokes the CLI in-process (typer's ``CliRunner``) and asserts:

* the exit code is 0 or a documented one (:data:`EXIT_CODES`: the codes of
  :mod:`cryptotrading.errors`, 1 for "unhealthy / mismatch", 2 for usage errors);
* no exception escaped and no traceback is in stdout or stderr;
* on a non-zero exit every table of every store holds what it held before
  (monitoring rows -- recorded slow queries, error logs -- aside).

Example counts: ``CRYPTOTRADING_FUZZ_EXAMPLES`` (default 20 per test, derandomized so
CI cannot flake); ``CRYPTOTRADING_FUZZ_RANDOM=1`` draws fresh examples each run
(``python3 dev.py fuzz`` sets both, 500 examples, random).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer.testing
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis.control import currently_in_test_context
from sqlalchemy import Engine, inspect
from typer.main import get_command
from typer.testing import CliRunner, Result

from cryptotrading import errors
from cryptotrading.cli import app
from cryptotrading.db.engine import create_store_engine
from cryptotrading.settings import Settings
from cryptotrading.stores import resolve_stores
from tests.helpers import settings_env

EXAMPLES = int(os.environ.get("CRYPTOTRADING_FUZZ_EXAMPLES", "20"))
RANDOM = os.environ.get("CRYPTOTRADING_FUZZ_RANDOM", "") not in ("", "0")
#: Skip shrinking (quicker failure reports while working on the suite).
NO_SHRINK = os.environ.get("CRYPTOTRADING_FUZZ_NO_SHRINK", "") not in ("", "0")

#: Exit codes a command may end with: success, the error tree's codes, and 1 for
#: "unhealthy / mismatch" results (db check, models verify ...), 2 for usage errors.
EXIT_CODES = frozenset(
    {0, 1, 2}
    | {
        cls.exit_code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.CryptotradingError)
    }
)

MASTER_KEY = "fuzz-master-secret-0123456789abcdef"


def fuzz_settings(weight: float = 1.0) -> settings:
    """Hypothesis settings of one fuzz test: ``weight`` scales the example count
    (cheap commands more, slow ones fewer)."""
    extra: dict[str, Any] = {} if RANDOM else {"database": None, "derandomize": True}
    if NO_SHRINK:
        extra["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
    return settings(
        max_examples=max(1, round(EXAMPLES * weight)),
        deadline=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
        **extra,
    )


Row = Mapping[str, Any]
#: ``ignore(table, row)``: True for a row the property does not compare.
Ignore = Callable[[str, Row], bool]


#: Change logs follow the tables they log (tests/migrations/test_capture.py checks
#: that): a row a failed command may leave elsewhere leaves its log entry too.
CHANGE_LOGS = frozenset({"change_log", "market_change_log", "series_changes"})


def monitoring_row(table: str, row: Row) -> bool:
    """Rows a failed command may leave: recorded slow queries, error logs, and the
    change-log entries of those (and of any row a test's ``ignore`` allows)."""
    if table == "error_logs" or table in CHANGE_LOGS:
        return True
    return table == "system_metrics" and row.get("metric_name") == "slow_query"


def _canonical(value: Any) -> str:
    return repr(value)


def snapshot(engines: Mapping[str, Engine], ignore: Ignore) -> dict[str, list[str]]:
    """Every row of every table of every store, canonical and sorted."""
    tables: dict[str, list[str]] = {}
    for store, engine in engines.items():
        with engine.connect() as connection:
            for name in sorted(inspect(connection).get_table_names()):
                result = connection.exec_driver_sql(f'SELECT * FROM "{name}"').mappings()
                rows = [dict(row) for row in result]
                tables[f"{store}.{name}"] = sorted(
                    _canonical(sorted(row.items())) for row in rows if not ignore(name, row)
                )
    return tables


def _diff(before: dict[str, list[str]], after: dict[str, list[str]]) -> str:
    lines = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, []), after.get(name, [])
        if old != new:
            gone = [row for row in old if row not in new][:3]
            added = [row for row in new if row not in old][:3]
            lines.append(f"{name}: {len(old)} -> {len(new)} rows; - {gone} + {added}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Known:
    """A failure in code another change is fixing right now: tolerated (and counted in
    the Hypothesis statistics) instead of failing the property, and pinned as an
    ``xfail(strict=False)`` test. Temporary: remove the entry
    when the fix lands."""

    name: str
    matches: Callable[[Sequence[str], BaseException], bool]


#: Empty: the last one (market --start/--end beyond pandas' range) was fixed in 9c24be8
#: and is pinned in test_found.py.
KNOWN_FAILURES: list[Known] = []


def known_failure(args: Sequence[str], exc: BaseException) -> Known | None:
    return next((k for k in KNOWN_FAILURES if k.matches(args, exc)), None)


class FastRunner(CliRunner):
    """A ``CliRunner`` that builds the click command tree of :data:`app` once (typer
    rebuilds it on every invoke, 80% of a quick command's time)."""

    _command = None

    def invoke(self, app: typer.Typer, *args: Any, **kwargs: Any) -> Result:
        if FastRunner._command is None:
            FastRunner._command = get_command(app)
        original = typer.testing._get_command
        typer.testing._get_command = lambda _app: FastRunner._command  # type: ignore[assignment,return-value]
        try:
            return super().invoke(app, *args, **kwargs)
        finally:
            typer.testing._get_command = original


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # name too long, NUL in the name
        return False


def _shown(args: Sequence[str]) -> str:
    return " ".join(repr(a[:200]) if len(a) > 200 else repr(a) for a in args)


@dataclass
class Fuzzer:
    """Runs CLI commands against one initialised data dir and checks the property."""

    settings: Settings
    workdir: Path
    env: dict[str, str | None] = field(default_factory=dict)
    engines: dict[str, Engine] = field(default_factory=dict)
    runner: CliRunner = field(default_factory=FastRunner)
    #: Ids made by the seeding fixtures (e.g. ``order_id``).
    facts: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {
            **settings_env(self.settings),
            "CRYPTOTRADING_MASTER_KEY": MASTER_KEY,
            "CRYPTOTRADING_CONFIG": None,
            "COLUMNS": "200",
        }
        for store in resolve_stores(self.settings):
            self.engines[store.name] = create_store_engine(store.url)

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()

    def invoke(
        self, args: Sequence[str], *, input: str | bytes | None = None, **env: str
    ) -> Result:
        """Run the CLI without checking anything (for seeding)."""
        return self.runner.invoke(app, list(args), input=input, env={**self.env, **env})

    def ok(self, args: Sequence[str], *, input: str | None = None) -> Result:
        """Run a command that must succeed (seeding a fixture)."""
        result = self.invoke(args, input=input)
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result

    def run(
        self,
        args: Sequence[str],
        *,
        input: str | bytes | None = None,
        ignore: Ignore | None = None,
        untouched: Sequence[Path] = (),
        env: Mapping[str, str] | None = None,
    ) -> Result:
        """Run *args* and assert the fuzz property; *untouched* paths must not be
        created when the command fails."""

        def skip(table: str, row: Row) -> bool:
            return monitoring_row(table, row) or bool(ignore and ignore(table, row))

        before = snapshot(self.engines, skip)
        existed = {path: _exists(path) for path in untouched}
        result = self.runner.invoke(app, list(args), input=input, env={**self.env, **(env or {})})
        shown = _shown(args)
        if currently_in_test_context():  # hypothesis statistics: exit codes per command
            event(f"{' '.join(a for a in args[:3] if a[:1] != '-')}: exit {result.exit_code}")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            known = known_failure(args, result.exception)
            if known is not None:
                event(f"KNOWN FAILURE (temporary): {known.name}")
                return result
            assert result.exc_info is not None
            trace = "".join(traceback.format_exception(*result.exc_info))
            raise AssertionError(f"uncaught exception from {shown}:\n{trace}")
        assert result.exit_code in EXIT_CODES, (
            f"undocumented exit code {result.exit_code} from {shown}: {result.output[-2000:]}"
        )
        # The tests only pass options that exist: this catches a renamed option that
        # would turn a fuzz test into a stream of usage errors.
        assert "No such option" not in result.output, f"stale option in {shown}: {result.output}"
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            assert "Traceback (most recent call last)" not in text, (
                f"traceback in {name} of {shown}: {text[-2000:]}"
            )
        if result.exit_code != 0:
            after = snapshot(self.engines, skip)
            changed = _diff(before, after)
            assert not changed, (
                f"exit {result.exit_code} from {shown} but data changed:\n{changed}\n"
                f"output: {result.output[-1000:]}"
            )
            for path, was in existed.items():
                assert was or not _exists(path), f"{shown} failed but created {path}"
        return result


#: Run a fuzz test on SQLite only (the snapshot property on every command there;
#: PostgreSQL for the file imports and the JSON payloads).
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def write(directory: Path, name: str, content: bytes) -> Path:
    """Write *content* to *directory*/*name* (parents created) and return the path."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def options(**values: str | None) -> list[str]:
    """``--name=value`` for every value given (``bucket_width`` -> ``--bucket-width``);
    the ``=`` form keeps a value that starts with ``-`` a value."""
    return [
        f"--{name.replace('_', '-')}={value}" for name, value in values.items() if value is not None
    ]
