"""Developer tool: write the Alembic revision of one schema version by autogenerate.

    python scripts/generate_migration.py LINEAGE VERSION "message"

It migrates a scratch SQLite database to the previous version, then lets Alembic
compare it with the models *as of VERSION* (tables and columns whose ``info['since']``
is not newer) and renders the difference as a revision named VERSION. The result
is reviewed and committed; it is never regenerated at run time.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    MetaData,
    Table,
    UniqueConstraint,
)

from cryptotrading.db.base import NAMING_CONVENTION
from cryptotrading.db.engine import create_store_engine
from cryptotrading.migrations import alembic_config, known_revisions, upgrade
from cryptotrading.models import lineage_tables


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def metadata_at(lineage: str, version: str) -> MetaData:
    """The lineage's models as they were at *version*."""
    target = MetaData(naming_convention=NAMING_CONVENTION)
    for table in lineage_tables(lineage):
        if _key(table.info["since"]) > _key(version):
            continue
        columns: list[Column[object]] = [
            column._copy()
            for column in table.columns
            if _key(column.info.get("since", "0")) <= _key(version)
        ]
        kept = {column.name for column in columns}
        extras: list[object] = []
        for constraint in table.constraints:
            names = {column.name for column in constraint.columns}
            if isinstance(constraint, UniqueConstraint) and names <= kept:
                extras.append(UniqueConstraint(*[c.name for c in constraint.columns]))
            elif isinstance(constraint, ForeignKeyConstraint) and names <= kept:
                extras.append(
                    ForeignKeyConstraint(
                        [element.parent.name for element in constraint.elements],
                        [element.target_fullname for element in constraint.elements],
                        ondelete=constraint.ondelete,
                    )
                )
            elif isinstance(constraint, CheckConstraint) and not names - kept:
                extras.append(CheckConstraint(constraint.sqltext, name=constraint.name))
        for index in table.indexes:
            if {column.name for column in index.columns} <= kept:
                extras.append(Index(None, *[c.name for c in index.columns], unique=index.unique))
        Table(table.name, target, *columns, *extras, info=dict(table.info), **table.kwargs)
    return target


def main(lineage: str, version: str, message: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_store_engine(f"sqlite:///{Path(scratch) / 'gen.db'}", create=True)
        previous = known_revisions(lineage)
        if previous:
            upgrade(engine, lineage, previous[-1])
        with engine.begin() as connection:
            config = alembic_config(lineage, connection)
            config.attributes["target_metadata"] = metadata_at(lineage, version)
            command.revision(
                config,
                message=message,
                autogenerate=True,
                rev_id=version,
                head="head",
            )
        engine.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:4])
