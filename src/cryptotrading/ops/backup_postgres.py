"""PostgreSQL side of backups: ``pg_dump -Fc`` at an exported snapshot, ``pg_restore``
into a scratch database, and the swap of databases by renaming."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from cryptotrading.db.engine import normalize_url
from cryptotrading.db.session import translate_errors
from cryptotrading.errors import (
    ConfigurationError,
    DataDirError,
    StoreBusyError,
    StoreError,
    StoreUnavailableError,
)
from cryptotrading.models import LINEAGES
from cryptotrading.ops.backup_lineage import Contents, versions_and_counts

#: PostgreSQL truncates identifiers longer than this.
MAX_IDENTIFIER = 63


def tool(name: str) -> str:
    """Path of a PostgreSQL client program (pg_dump, pg_restore)."""
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        raise ConfigurationError(
            f"{name} is not installed; it is needed to back up PostgreSQL stores",
            hint="Install the PostgreSQL client programs (e.g. apt-get install postgresql-client).",
        )
    return found


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and the environment carrying it."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


_WRITE_FAILURES = ("no space left", "could not write", "could not open output", "permission denied")


def _run(command: list[str], env: dict[str, str], what: str, output: Path | None = None) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if completed.returncode == 0:
        return
    lines = completed.stderr.strip().splitlines()
    if completed.returncode < 0:
        detail = f"killed by {signal.Signals(-completed.returncode).name}"
    else:
        detail = lines[-1] if lines else f"exit code {completed.returncode}"
    write_failed = completed.returncode == -signal.SIGXFSZ or any(
        text in completed.stderr.lower() for text in _WRITE_FAILURES
    )
    if output is not None and write_failed:
        raise DataDirError(
            f"cannot write backup {output.name} in {output.parent}: {detail} "
            "(disk full, file size limit or read-only target)",
            hint="Free disk space or choose another directory with --dir; "
            "the source database was not changed.",
        )
    raise StoreError(
        f"{what} failed: {detail}",
        hint="Check the server, the disk space of the target and the file named above.",
    )


def _table_names(connection: Connection) -> set[str]:
    return {
        row[0]
        for row in connection.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
    }


def _describe(
    connection: Connection, lineages: Iterable[str], tables: Iterable[str]
) -> tuple[dict[str, str | None], dict[str, int]]:
    def first_value(sql: str) -> Any:
        return connection.exec_driver_sql(sql).scalar()

    return versions_and_counts(first_value, _table_names(connection), lineages, tables)


def dump(
    engine: Engine, url: str, target: Path, lineages: Iterable[str], tables: Iterable[str]
) -> tuple[dict[str, str | None], dict[str, int]]:
    """``pg_dump -Fc`` into *target*; versions and row counts from the same snapshot.

    A REPEATABLE READ transaction exports its snapshot, counts the rows, and keeps
    the snapshot alive while ``pg_dump --snapshot`` reads it: the counts in the
    manifest describe exactly the dumped data, whatever writers do meanwhile.
    """
    uri, env = _libpq(make_url(normalize_url(url)))
    with translate_errors("backup"), engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            snapshot = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
            versions, counts = _describe(connection, lineages, tables)
            _run(
                [tool("pg_dump"), "-Fc", "--no-owner", "--no-privileges",
                 f"--snapshot={snapshot}", "-f", str(target), f"--dbname={uri}"],
                env,
                "pg_dump",
                target,
            )  # fmt: skip
    return versions, counts


def list_contents(url: str, archive: Path) -> None:
    """``pg_restore --list``: the archive's table of contents must be readable."""
    _uri, env = _libpq(make_url(normalize_url(url)))
    _run([tool("pg_restore"), "--list", str(archive)], env, "pg_restore --list")


def _admin_engine(url: str) -> Engine:
    """An autocommit engine on the server's maintenance database ``postgres``."""
    parsed = make_url(normalize_url(url)).set(database="postgres")
    return create_engine(parsed, isolation_level="AUTOCOMMIT")


def scratch_name(database: str, purpose: str) -> str:
    suffix = f"_{purpose}_{uuid.uuid4().hex[:8]}"
    return database[: MAX_IDENTIFIER - len(suffix)] + suffix


@contextmanager
def scratch_restore(
    url: str, archive: Path, tables: Iterable[str], *, keep: bool
) -> Iterator[tuple[str, Contents]]:
    """Restore *archive* into a new scratch database on the same server; yield its
    name and contents (versions of every lineage, row counts of *tables*, table
    names). Dropped on exit unless *keep* (and no error)."""
    live = make_url(normalize_url(url))
    name = scratch_name(str(live.database), "verify")
    admin = _admin_engine(url)
    uri, env = _libpq(live.set(database=name))
    kept = False
    try:
        with translate_errors("backup verify"), admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        _run(
            [tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
             f"--dbname={uri}", str(archive)],
            env,
            "pg_restore",
        )  # fmt: skip
        scratch = create_engine(live.set(database=name))
        try:
            with translate_errors("backup verify"), scratch.connect() as connection:
                versions, counts = _describe(connection, LINEAGES, tables)
                contents = Contents(versions, counts, frozenset(_table_names(connection)))
        finally:
            scratch.dispose()
        yield name, contents
        kept = keep
    finally:
        if not kept:
            with translate_errors("backup verify"), admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


_SESSIONS = (
    "SELECT pid, coalesce(nullif(application_name, ''), 'unnamed'), coalesce(state, '?') "
    "FROM pg_stat_activity WHERE datname = %(name)s AND pid <> pg_backend_pid() "
    "AND backend_type = 'client backend' ORDER BY pid"
)


def _sessions(connection: Connection, database: str) -> list[str]:
    rows = connection.exec_driver_sql(_SESSIONS, {"name": database}).all()
    return [f"pid {pid} ({application}, {state})" for pid, application, state in rows]


def _busy(database: str, sessions: list[str]) -> StoreBusyError:
    shown = ", ".join(sessions[:3]) + (
        f" and {len(sessions) - 3} more" if len(sessions) > 3 else ""
    )
    return StoreBusyError(
        f"cannot restore database {database!r}: {len(sessions)} other session(s) are "
        f"connected to it ({shown}); nothing was restored",
        hint="Stop the processes using the database (writers, `replicate`, the API), then "
        "restore again; --force disconnects them and restores anyway.",
    )


def begin_restore(url: str, *, force: bool, grace_seconds: float = 3.0) -> int | None:
    """Refuse (unless *force*) while other sessions are connected to the live database;
    returns its row-change counter (:func:`rows_changed`) for :func:`swap_databases`.

    Sessions this process has just closed may take a moment to end: they are waited
    for up to *grace_seconds*.
    """
    if force:
        return None
    live = str(make_url(normalize_url(url)).database)
    admin = _admin_engine(url)
    try:
        with translate_errors("backup restore"), admin.connect() as connection:
            deadline = time.monotonic() + grace_seconds
            while sessions := _sessions(connection, live):
                if time.monotonic() >= deadline:
                    raise _busy(live, sessions)
                time.sleep(0.1)
    finally:
        admin.dispose()
    return rows_changed(url)


def rows_changed(url: str) -> int | None:
    """Rows inserted, updated and deleted in the database of *url* since its statistics
    began (``pg_stat_all_tables``; a backend flushes its counts when it disconnects at
    the latest, and autovacuum changes none): a writer that connected, wrote and left
    while a restore was verifying moves it. None when the database does not exist."""
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    try:
        with translate_errors("backup restore"), engine.connect() as connection:
            value = connection.exec_driver_sql(
                "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)"
                " FROM pg_stat_all_tables"
                " WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
            ).scalar()
    except StoreUnavailableError:
        return None  # disaster recovery: the live database is gone
    finally:
        engine.dispose()
    return int(value or 0)


def _disconnect_others(connection: Connection, database: str) -> None:
    connection.exec_driver_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %(name)s "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        {"name": database},
    )


def _await_no_sessions(
    connection: Connection, live: str, restored: str, grace_seconds: float = 3.0
) -> None:
    """Wait up to *grace_seconds* for the sessions of *live* to end (one this process
    has just closed may take a moment); otherwise drop *restored* and refuse."""
    deadline = time.monotonic() + grace_seconds
    while sessions := _sessions(connection, live):
        if time.monotonic() >= deadline:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')
            raise _busy(live, sessions)
        time.sleep(0.1)


def swap_databases(
    url: str, restored: str, aside: str, *, force: bool = False, since: int | None = None
) -> bool:
    """Rename the live database to *aside* and *restored* to the live name; returns
    whether there was a live database to keep aside.

    Fails cleanly (nothing renamed, *restored* dropped) while other sessions use the
    live database, or when its rows changed since *since* (:func:`begin_restore`) --
    unless *force*, which disconnects them first.
    """
    live = str(make_url(normalize_url(url)).database)
    admin = _admin_engine(url)
    try:
        with translate_errors("backup restore"), admin.connect() as connection:
            exists = connection.exec_driver_sql(
                "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": live}
            ).scalar()
            if not exists:  # disaster recovery: the live database is gone
                connection.exec_driver_sql(f'ALTER DATABASE "{restored}" RENAME TO "{live}"')
                return False
            failure = "other sessions are connected"
            for attempt in range(10 if force else 1):
                if force:
                    _disconnect_others(connection, live)
                    time.sleep(0.05 * attempt)
                else:
                    # a writer that just left: its session ends after its counts flush
                    _await_no_sessions(connection, live, restored)
                    if since is not None and rows_changed(url) != since:
                        connection.exec_driver_sql(
                            f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)'
                        )
                        raise StoreBusyError(
                            f"database {live!r} was written while the backup was being "
                            "verified; nothing was restored (those rows would be lost)",
                            hint="Stop the writers and restore again, or pass --force to "
                            "restore anyway.",
                        )
                    _await_no_sessions(connection, live, restored)  # rows_changed()'s own
                try:
                    connection.exec_driver_sql(f'ALTER DATABASE "{live}" RENAME TO "{aside}"')
                    break
                except DBAPIError as exc:  # e.g. sessions still connected to it
                    failure = str(exc.orig or exc).splitlines()[0]
            else:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')
                raise StoreBusyError(
                    f"cannot restore database {live!r}: {failure}; nothing was restored",
                    hint="Stop every process connected to the database, then restore again.",
                )
            connection.exec_driver_sql(f'ALTER DATABASE "{restored}" RENAME TO "{live}"')
            return True
    finally:
        admin.dispose()
