"""Helpers every test may import: paths, the CLI runners, row factories, real candles.

Fixtures live in ``tests/conftest.py`` (``backend``, ``make_settings``, ``stores``,
``app_engine``, ``market_engine``, ``user_id``, ``market_data_dir`` ...); plain functions
live here. A package's own ``helpers.py`` holds what only that package's tests use.
Test modules never import from one another, nor from a ``conftest.py``.

    settings = make_settings("three")
    make_user(stores.engine(stores.app), "carol")
    listed = invoke_json(settings, "orders", "list", "--json")
    failed = invoke(settings, "orders", "cancel", "99", code=2)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, func, insert, select
from typer.testing import Result

from cryptotrading.db import unit_of_work
from cryptotrading.models import metadata
from cryptotrading.models.agents import A2AAgent
from cryptotrading.models.market import TimeSeries
from cryptotrading.models.users import User
from cryptotrading.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("CRYPTOTRADING_SHARED_DIR", ROOT.parent / "shared"))
#: The real Binance candles under ``market_data_dir`` (BTC/ETH 1h and 5m, 2020-12..2021-07).
BINANCE_DIR = "binance_nfi_2020-12_2021-07"

SettingsFactory = Callable[..., Settings]
"""The type of the ``make_settings`` fixture: ``make_settings(layout, migrated=True, **extra)``."""


def settings_env(settings: Settings) -> dict[str, str]:
    """``CRYPTOTRADING_*`` variables that make the CLI open the same stores as *settings*
    (pass as ``env=`` to :func:`invoke` or ``subprocess.run``)."""
    env = {
        "CRYPTOTRADING_DATA_DIR": str(settings.data_dir),
        "CRYPTOTRADING_LAYOUT": settings.layout,
    }
    for name in ("app_url", "market_url", "replica_url"):
        value = getattr(settings, name)
        if value:
            env[f"CRYPTOTRADING_{name.upper()}"] = value
    return env


# --- the command line ---------------------------------------------------------------

Target = Settings | Mapping[str, str | None]
"""Where a CLI call runs: a :class:`Settings`, or an environment (``settings_env(...)``
plus extra variables; ``None`` unsets a variable)."""


def _environment(target: Target, env: Mapping[str, str | None] | None) -> dict[str, str | None]:
    base = settings_env(target) if isinstance(target, Settings) else dict(target)
    return {**base, **(env or {})}


def invoke(
    target: Target,
    *args: str,
    code: int | None = None,
    input: str | None = None,
    env: Mapping[str, str | None] | None = None,
) -> Result:
    """Run ``cryptotrading ARGS`` in this process (fast: no interpreter start-up).

    *code*: assert the exit code (``None``: the caller checks). An exception the CLI did
    not turn into an exit (a bug: no ``error:``/``hint:``) is raised, not swallowed.
    """
    from typer.testing import CliRunner

    from cryptotrading.cli import app

    result = CliRunner().invoke(app, list(args), input=input, env=_environment(target, env))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    if code is not None:
        assert result.exit_code == code, (args, result.output)
    return result


def invoke_json(
    target: Target,
    *args: str,
    code: int = 0,
    input: str | None = None,
    env: Mapping[str, str | None] | None = None,
) -> Any:
    """:func:`invoke`, assert the exit code (default 0) and parse stdout as JSON
    (pass ``--json`` among *args* where the command needs it)."""
    return json.loads(invoke(target, *args, code=code, input=input, env=env).stdout)


CLI_CODE = "from cryptotrading.cli import main; main()"


def run_cli(
    settings: Settings,
    *args: str,
    prefix: Sequence[str] = (),
    preexec: Callable[[], None] | None = None,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``cryptotrading ARGS`` in a subprocess on the stores of *settings* -- for what
    needs a real process (signals, resource limits, another user). *prefix*: a wrapper
    such as ``setpriv ...``; *preexec*: e.g. set a resource limit."""
    env = {**os.environ, **settings_env(settings), **(extra_env or {})}
    return subprocess.run(
        [*prefix, sys.executable, "-c", CLI_CODE, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
        check=False,
    )


# --- rows -----------------------------------------------------------------------------


def make_user(engine: Engine, name: str = "alice") -> int:
    """A user row, its id (a plain ORM insert; the users service has its own tests)."""
    with unit_of_work(engine) as session:
        user = User(username=name, email=f"{name}@example.com", password_hash="x")
        session.add(user)
        session.flush()
        return user.id


def make_agent(engine: Engine, agent_id: str = "agent-1", agent_type: str = "analyst") -> str:
    """An active agent row, its id (a plain ORM insert; ``cryptotrading.agents`` has its tests)."""
    with unit_of_work(engine) as session:
        session.add(A2AAgent(agent_id=agent_id, agent_type=agent_type))
    return agent_id


def count_rows(engine: Engine, table: str | type[Any] | Table) -> int:
    """Number of rows in *table* (a table name, a model class or a Table)."""
    selectable = metadata.tables[table] if isinstance(table, str) else table
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(selectable)) or 0)


# --- real candles -----------------------------------------------------------------------


def load_rows(path: Path) -> list[list[Any]]:
    """ccxt/freqtrade JSON candle rows ``[ts, o, h, l, c, v]`` of a real file."""
    with path.open() as handle:
        rows: list[list[Any]] = json.load(handle)
    return rows


def load_candles(
    engine: Engine, market_dir: Path, symbol: str, frequency: str = "1h", exchange: str = ""
) -> int:
    """Load a real Binance ccxt JSON file into ``time_series`` (plain Core insert)."""
    path = market_dir / BINANCE_DIR / f"{symbol.replace('/', '_')}-{frequency}.json"
    now = int(time.time() * 1000)
    values = [
        {
            "symbol": symbol,
            "frequency": frequency,
            "timestamp": int(ts),
            "exchange": exchange,
            "open": float(o),
            "high": float(h),
            "low": float(low),
            "close": float(c),
            "volume": float(v),
            "ingested_at": now,
        }
        for ts, o, h, low, c, v in load_rows(path)
    ]
    with engine.begin() as connection:
        connection.execute(insert(TimeSeries), values)
    return len(values)


def insert_candle(
    engine: Engine,
    symbol: str,
    when: datetime,
    *,
    close: float,
    frequency: str = "1h",
    exchange: str = "",
) -> None:
    """One candle (open = high = low = close) at *when*."""
    row = {
        "symbol": symbol,
        "frequency": frequency,
        "timestamp": int(when.timestamp() * 1000),
        "exchange": exchange,
        "open": close,
        "high": close,
        "low": close,
        "close": close,
        "volume": 1.0,
        "ingested_at": int(time.time() * 1000),
    }
    with engine.begin() as connection:
        connection.execute(insert(TimeSeries), [row])


#: Tables a failed command may still write (recorded slow queries, error logs).
MONITORING_TABLES = frozenset({"system_metrics", "error_logs"})


def table_counts(settings: Settings) -> dict[str, dict[str, int]]:
    """Row count of every table of every store (monitoring tables aside): equal before
    and after a refused command means it wrote nothing."""
    from cryptotrading.ops.info import info
    from cryptotrading.stores import Stores

    with Stores(settings) as stores:
        return {
            item.store: {t: n for t, n in item.tables.items() if t not in MONITORING_TABLES}
            for item in info(stores)
        }


def assert_refused(result: Result, message: str, exit_code: int = 5) -> None:
    """A named error: exit code, ``error:`` and ``hint:`` on stderr, no traceback."""
    assert isinstance(result.exception, SystemExit), result.exception  # nothing escaped
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and lines[-1].startswith("hint: "), result.stderr
    assert message in result.stderr, result.stderr
