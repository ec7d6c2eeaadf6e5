"""PostgreSQL restore: a writer that connected, wrote and disconnected while the backup
was being verified is detected (its rows would be lost by the swap) -- on the real
server, with a real second process."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cryptotrading.db.engine import normalize_url
from cryptotrading.errors import StoreBusyError
from cryptotrading.ops import backup_postgres

WRITER = """
import sys
import psycopg
with psycopg.connect(sys.argv[1]) as conn:
    conn.execute(
        "INSERT INTO time_series (symbol, frequency, timestamp, exchange, open, high, low,"
        " close, volume, ingested_at) VALUES ('LATE/USDT', '1h', 0, '', 1, 1, 1, 1, 1, 0)"
    )
"""


def _libpq(url: str) -> str:
    return make_url(normalize_url(url)).set(drivername="postgresql").render_as_string(False)


def _count(url: str) -> int:
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM time_series")).scalar_one())
    finally:
        engine.dispose()


def _wait_until_alone(server: Any, database: str) -> None:
    deadline = time.monotonic() + 10
    with server.admin.connect() as connection:
        while connection.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"), {"d": database}
        ).scalar_one():
            assert time.monotonic() < deadline, "sessions did not end"
            time.sleep(0.05)


def test_a_writer_that_came_and_went_is_detected(pg_server: Any) -> None:
    live = pg_server.create(("market",))
    name = str(make_url(live).database)
    since = backup_postgres.begin_restore(live, force=False)
    assert since is not None
    writer = subprocess.run(
        [sys.executable, "-c", WRITER, _libpq(live)], capture_output=True, text=True
    )
    assert writer.returncode == 0, writer.stderr
    _wait_until_alone(pg_server, name)
    restored = str(make_url(pg_server.create(("market",))).database)
    with pytest.raises(StoreBusyError, match="was written while the backup was being verified"):
        backup_postgres.swap_databases(live, restored, f"{name}_aside", since=since)
    assert _count(live) == 1  # the late row is still in the live database
    with pg_server.admin.connect() as connection:
        assert not connection.execute(
            text("SELECT count(*) FROM pg_database WHERE datname = :d"), {"d": restored}
        ).scalar_one()
    # with nothing written since, the same swap goes through
    since = backup_postgres.begin_restore(live, force=False)
    restored = str(make_url(pg_server.create(("market",))).database)
    _wait_until_alone(pg_server, name)
    assert backup_postgres.swap_databases(live, restored, f"{name}_aside", since=since)
    assert _count(live) == 0
    pg_server.drop(pg_server.url(f"{name}_aside"))
