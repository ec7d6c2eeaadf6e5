"""``INSERT ... ON CONFLICT DO UPDATE`` for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    """Insert *rows*; rows whose *keys* already exist get their *update* columns replaced.
    One executemany in the session's transaction."""
    if not rows:
        return
    dialect = session.connection().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={column: statement.excluded[column] for column in update},
    )
    session.execute(statement, list(rows))
