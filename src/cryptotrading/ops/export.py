"""``db export-schema``: the DDL of every store, as the database itself reports it
(to a file only with ``--force`` when it exists; see :mod:`cryptotrading.outputs`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import Engine, MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateIndex, CreateTable

from cryptotrading.db.engine import normalize_url
from cryptotrading.db.session import translate_errors
from cryptotrading.errors import StoreError
from cryptotrading.outputs import check_output, write_output
from cryptotrading.stores import Store, Stores


def export_schema(stores: Stores) -> str:
    """DDL of every store, each introduced by a comment naming it."""
    parts = []
    for store in stores:
        engine = stores.engine(store)
        with translate_errors(store.name):
            ddl = (
                _sqlite_ddl(engine) if store.backend == "sqlite" else _postgresql_ddl(engine, store)
            )
        parts.append(f"-- store: {store.name} ({store.display_url})\n{ddl.strip()}\n")
    return "\n".join(parts)


def write_schema(stores: Stores, path: Path, *, force: bool = False) -> str:
    """Write :func:`export_schema` to *path* whole or not at all; an existing file is
    replaced only with *force*. The target is checked before the stores are read.
    Returns the DDL written."""
    check_output(path, overwrite=force)
    ddl = export_schema(stores)

    def write(target: Path) -> None:
        target.write_text(ddl, encoding="utf-8")

    write_output(path, write, overwrite=force)
    return ddl


def _sqlite_ddl(engine: Engine) -> str:
    """Like the sqlite3 shell's ``.schema``: the stored CREATE statements."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
            "AND name NOT LIKE 'sqlite_%' ORDER BY type = 'index', name"
        ).fetchall()
    return "\n".join(f"{row[0]};" for row in rows)


def _postgresql_ddl(engine: Engine, store: Store) -> str:
    """``pg_dump --schema-only`` when available, else DDL compiled from reflection."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump:
        url = make_url(normalize_url(store.url))
        env = dict(os.environ)
        if url.password:
            env["PGPASSWORD"] = url.password
        command = [pg_dump, "--schema-only", "--no-owner", "--no-privileges"]
        for flag, value in (("-h", url.host), ("-p", url.port), ("-U", url.username)):
            if value:
                command += [flag, str(value)]
        completed = subprocess.run(
            [*command, url.database or ""], capture_output=True, text=True, env=env, check=False
        )
        if completed.returncode == 0:
            # Drop psql's per-dump random \restrict guards: the export is stable DDL.
            lines = completed.stdout.splitlines()
            return "\n".join(
                line for line in lines if not line.startswith(("\\restrict", "\\unrestrict"))
            )
        if "server version mismatch" not in completed.stderr:
            raise StoreError(f"pg_dump failed: {completed.stderr.strip()}")
    reflected = MetaData()
    reflected.reflect(engine)
    statements = []
    for table in reflected.sorted_tables:
        statements.append(f"{CreateTable(table).compile(engine)};".strip())
        statements.extend(f"{CreateIndex(index).compile(engine)};" for index in table.indexes)
    return "\n\n".join(statements)
