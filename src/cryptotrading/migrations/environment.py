"""The Alembic environment shared by every lineage (each ``env.py`` calls :func:`run`).

Migrations always run on a connection handed over in ``config.attributes`` by
:mod:`cryptotrading.migrations`, in one transaction, with batch mode so that
SQLite can ALTER tables (Alembic's move-and-copy). Each lineage keeps its own
version table, ``alembic_version_<lineage>``, so one database can carry several.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import MetaData

from cryptotrading.models import lineage_tables, metadata


def version_table(lineage: str) -> str:
    """Name of the Alembic version table of *lineage*."""
    return f"alembic_version_{lineage}"


def run() -> None:
    config = context.config
    lineage: str = config.attributes["lineage"]
    target: MetaData = config.attributes.get("target_metadata", metadata)
    owned = {table.name for table in lineage_tables(lineage)}

    def include_object(
        _obj: Any, name: str | None, type_: str, _reflected: bool, _compare_to: Any
    ) -> bool:
        return type_ != "table" or name in owned

    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("cryptotrading migrations run only through cryptotrading.migrations")
    context.configure(
        connection=connection,
        target_metadata=target,
        version_table=version_table(lineage),
        render_as_batch=True,
        include_object=include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
