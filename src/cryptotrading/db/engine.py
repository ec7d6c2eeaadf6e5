"""Engines for SQLite files and PostgreSQL servers, configured for safe concurrent use."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError

from cryptotrading.errors import ConfigurationError

#: Execution option that marks a read-only connection: SQLite then opens a deferred
#: transaction (a shared read lock) instead of taking the write lock up front.
READ_ONLY = "cryptotrading_read_only"


def normalize_url(url: str) -> str:
    """Return *url* with our PostgreSQL driver (psycopg 3) made explicit."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def parse_url(url: str) -> URL:
    """*url* parsed (our PostgreSQL driver made explicit); anything unparseable is a
    :class:`ConfigurationError` naming the URL with its password hidden."""
    try:
        return make_url(normalize_url(url))
    except (ArgumentError, ValueError, TypeError):  # bad port, bracket, scheme ...
        raise ConfigurationError(
            f"cannot parse database URL {mask_url(url)!r}",
            hint="Use sqlite:///path/to/file.db or postgresql://user@host:5432/dbname.",
        ) from None


def backend_of(url: str) -> str:
    """``"sqlite"`` or ``"postgresql"``; anything else -- an unparseable URL, another
    backend, a port out of range, an in-memory SQLite database (it would vanish with
    the process) or a NUL byte in a path -- is a :class:`ConfigurationError`."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"unsupported database backend {backend!r}",
            hint="cryptotrading supports SQLite files and PostgreSQL servers.",
        )
    if "\x00" in url:
        raise ConfigurationError(
            "database URL contains a NUL byte", hint="Remove the NUL character from the URL."
        )
    if backend == "postgresql" and parsed.port is not None and not 0 < parsed.port < 65536:
        raise ConfigurationError(
            f"port {parsed.port} of database URL {mask_url(url)!r} is out of range",
            hint="Use a TCP port from 1 to 65535 (PostgreSQL listens on 5432 by default).",
        )
    if backend == "sqlite" and _in_memory(parsed):
        raise ConfigurationError(
            f"{url!r} is an in-memory SQLite database: a store must outlive the process",
            hint="Use a file, e.g. sqlite:///data/cryptotrading.db, or unset the URL to use "
            "the files of the data dir.",
        )
    return backend


def _in_memory(parsed: URL) -> bool:
    database = parsed.database or ""
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    return database in ("", ":memory:") or parsed.query.get("mode") == "memory"


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to print or log)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return re.sub(r"//.*@", "//***@", url, count=1, flags=re.S)  # hide any user info


def sqlite_path(url: str) -> Path | None:
    """Filesystem path of a SQLite URL, or None for PostgreSQL / in-memory."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    database = parsed.database
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    return None if database == ":memory:" else Path(database)


def create_store_engine(
    url: str,
    *,
    create: bool = False,
    busy_timeout_ms: int = 30_000,
    synchronous: str = "FULL",
    **kwargs: Any,
) -> Engine:
    """An engine for *url*. SQLite files are opened read-write without being created
    unless *create* is true, so a typo never leaves an empty database behind."""
    url = normalize_url(url)
    if backend_of(url) == "postgresql":
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 5, "application_name": "cryptotrading"},
            **kwargs,
        )
    path = sqlite_path(url)
    if path is None:
        engine = create_engine(url, **kwargs)
    else:
        mode = "rwc" if create else "rw"
        file_uri = f"sqlite+pysqlite:///file:{quote(str(path.resolve()))}?mode={mode}&uri=true"
        engine = create_engine(file_uri, **kwargs)
    _configure_sqlite(engine, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
    return engine


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself instead of the
        # sqlite3 module's implicit, deferred BEGIN before DML only.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Wait up to busy_timeout for another writer's lock instead of failing at once.
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # SQLite ignores foreign keys unless asked, on every connection.
        cursor.execute("PRAGMA foreign_keys = ON")
        # Write-ahead log: readers never block the writer, and a killed process
        # leaves every committed transaction intact (persistent, set per file).
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            cursor.execute("PRAGMA journal_mode = WAL")
        # FULL: fsync the WAL at every commit (application data); NORMAL: fsync at
        # checkpoints only, still crash-safe for the process, faster for market data.
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        # Temporary b-trees (sorts, GROUP BY) in memory, not in temp files.
        cursor.execute("PRAGMA temp_store = MEMORY")
        # 64 MiB page cache per connection (negative = KiB).
        cursor.execute("PRAGMA cache_size = -65536")
        # Memory-map up to 256 MiB of the file: reads without read() syscalls.
        cursor.execute("PRAGMA mmap_size = 268435456")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        # Writers take the write lock at BEGIN (IMMEDIATE): two writers never
        # deadlock upgrading shared locks, they queue on busy_timeout instead.
        statement = "BEGIN" if options.get(READ_ONLY) else "BEGIN IMMEDIATE"
        connection.exec_driver_sql(statement)
