"""Versioned schema migrations (Alembic), one lineage per kind of store.

The lineages ``app`` and ``market`` each have their own script directory and
version table; their revisions are named after the spec's schema versions
(``1.0.0``, ``1.5.0``, ``2.0.0``) and the versions after them (``2.1.0``, ...: one per
capability, a no-op revision in a lineage it does not touch), so ``db downgrade 1.0.0``
means the same on every store. Every function takes an engine and runs in one transaction: a failed
migration leaves the database as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, inspect

from cryptotrading.db.engine import READ_ONLY
from cryptotrading.db.session import translate_errors
from cryptotrading.errors import SchemaVersionError, ValidationError
from cryptotrading.migrations import capture
from cryptotrading.migrations.environment import version_table

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(lineage: str, connection: Connection | None = None) -> Config:
    """An Alembic config for *lineage*, bound to *connection* when given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR / lineage))
    config.attributes["lineage"] = lineage
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def script_directory(lineage: str) -> ScriptDirectory:
    """The revision scripts of *lineage*, read once per process (they ship with the
    package; reading them again took most of an idle replication pass)."""
    return ScriptDirectory.from_config(alembic_config(lineage))


def head(lineage: str) -> str:
    """The newest revision of *lineage*."""
    revision = script_directory(lineage).get_current_head()
    assert revision is not None
    return revision


def known_revisions(lineage: str) -> list[str]:
    """Revisions of *lineage*, oldest first."""
    return [
        script.revision for script in reversed(list(script_directory(lineage).walk_revisions()))
    ]


def current(engine: Engine, lineage: str) -> str | None:
    """The revision *engine*'s database is at for *lineage* (None: not migrated)."""
    with translate_errors(str(engine.url.database)), engine.connect() as connection:
        # A reader: on SQLite a deferred BEGIN, never queued behind a writer's lock.
        connection = connection.execution_options(**{READ_ONLY: True})
        if not inspect(connection).has_table(version_table(lineage)):
            return None
        context = MigrationContext.configure(
            connection, opts={"version_table": version_table(lineage)}
        )
        heads = context.get_current_heads()
    if not heads:
        return None
    revision = heads[0]
    if revision not in known_revisions(lineage):
        raise SchemaVersionError(
            f"database is at schema version {revision!r} of lineage {lineage!r}, unknown to "
            f"this release (head {head(lineage)})",
            hint="Upgrade cryptotrading to a release that knows this version; nothing was changed.",
        )
    return revision


@dataclass(frozen=True)
class Step:
    """What one migrate call did to one lineage of one store."""

    lineage: str
    before: str | None
    after: str | None


def _check_target(lineage: str, revision: str) -> None:
    if revision in ("head", "base"):
        return
    if revision not in known_revisions(lineage):
        raise ValidationError(
            f"unknown schema version {revision!r}",
            hint=f"Choose one of: {', '.join(known_revisions(lineage))}, head or base.",
        )


def upgrade(engine: Engine, lineage: str, revision: str = "head") -> Step:
    """Upgrade *lineage* of *engine*'s database to *revision*, in one transaction."""
    _check_target(lineage, revision)
    before = current(engine, lineage)
    _run(engine, lineage, revision, downgrade=False)
    return Step(lineage, before, current(engine, lineage))


def downgrade(engine: Engine, lineage: str, revision: str) -> Step:
    """Downgrade *lineage* of *engine*'s database to *revision*, in one transaction."""
    _check_target(lineage, revision)
    before = current(engine, lineage)
    _run(engine, lineage, revision, downgrade=True)
    return Step(lineage, before, current(engine, lineage))


def _run(engine: Engine, lineage: str, revision: str, *, downgrade: bool) -> None:
    sqlite = engine.dialect.name == "sqlite"
    with translate_errors(str(engine.url.database)), engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        if sqlite and raw is not None:
            # Batch migrations rebuild tables (copy, drop, rename); with foreign keys
            # on, dropping a parent would cascade. SQLite only lets this pragma change
            # outside a transaction; integrity is checked before commit instead.
            raw.execute("PRAGMA foreign_keys = OFF")
        try:
            with connection.begin():
                config = alembic_config(lineage, connection)
                try:
                    if downgrade:
                        command.downgrade(config, revision)
                    else:
                        command.upgrade(config, revision)
                except CommandError as exc:
                    raise SchemaVersionError(
                        f"migration of lineage {lineage!r} failed: {exc}"
                    ) from None
                # Batch migrations rebuild SQLite tables without their triggers, and
                # every version may add columns: capture is rebuilt after each run.
                capture.install(connection, lineage)
                if sqlite:
                    _assert_foreign_keys(connection)
        finally:
            if sqlite and raw is not None:
                raw.execute("PRAGMA foreign_keys = ON")


def _assert_foreign_keys(connection: Connection) -> None:
    violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if violations:
        table, rowid, parent, _ = violations[0]
        raise SchemaVersionError(
            f"migration would leave {len(violations)} foreign-key violation(s), first: "
            f"{table} row {rowid} -> {parent}; rolled back",
            hint="Repair the orphan rows (see `cryptotrading db check`) and migrate again.",
        )


def history(lineage: str) -> list[tuple[str, str]]:
    """(revision, description) pairs of *lineage*, oldest first."""
    scripts = reversed(list(script_directory(lineage).walk_revisions()))
    return [(script.revision, script.doc or "") for script in scripts]
