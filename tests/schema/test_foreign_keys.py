"""Every foreign key rejects an orphan row, on SQLite too."""

from __future__ import annotations

import pytest
from sqlalchemy import ForeignKeyConstraint, Table, func, select

from cryptotrading.db import unit_of_work
from cryptotrading.errors import IntegrityViolationError
from cryptotrading.models import metadata
from cryptotrading.stores import Stores
from tests.schema.rows import build_row

FOREIGN_KEYS: list[tuple[Table, ForeignKeyConstraint]] = [
    (table, constraint)
    for table in metadata.sorted_tables
    for constraint in sorted(table.foreign_key_constraints, key=lambda c: c.column_keys)
]


def test_schema_has_the_relationships_of_the_spec() -> None:
    assert len(FOREIGN_KEYS) >= 25


@pytest.mark.parametrize(
    ("table", "constraint"),
    FOREIGN_KEYS,
    ids=[f"{t.name}.{'+'.join(c.column_keys)}" for t, c in FOREIGN_KEYS],
)
def test_foreign_key_rejects_an_orphan(
    stores: Stores, table: Table, constraint: ForeignKeyConstraint
) -> None:
    engine = stores.engine(stores.app)
    with engine.begin() as connection:  # control: a row with valid parents is accepted
        connection.execute(table.insert().values(**build_row(connection, table)))
    with engine.connect() as connection:
        before = connection.execute(select(func.count()).select_from(table)).scalar_one()

    with (
        pytest.raises(IntegrityViolationError, match="constraint violated"),
        unit_of_work(engine, "app") as session,
    ):
        row = build_row(session.connection(), table, orphan=constraint)
        session.execute(table.insert().values(**row))
        session.flush()

    with engine.connect() as connection:
        after = connection.execute(select(func.count()).select_from(table)).scalar_one()
    assert after == before
