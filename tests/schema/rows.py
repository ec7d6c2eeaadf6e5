"""Generic, valid rows for any model table (parents created as needed)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Connection, ForeignKeyConstraint, Table, TypeDecorator

_counter = itertools.count(1)

#: Values that satisfy the CHECK constraints of the schema.
CHECKED_VALUES = {"role": "user", "severity": "info", "side": "buy", "order_type": "limit"}


def sample(column: Column[Any]) -> Any:
    """A value of the column's Python type, unique per call."""
    if column.name in CHECKED_VALUES:
        return CHECKED_VALUES[column.name]
    number = next(_counter)
    if isinstance(column.type, JSON):
        return {"n": number}
    type_ = column.type
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    python_type = type_.python_type
    if python_type is str:
        length = getattr(column.type, "length", None) or 64
        return f"v{number}"[:length]
    if python_type is bool:
        return True
    if python_type is int:
        return number
    if python_type is float:
        return 0.5
    if python_type is Decimal:
        return Decimal("1.5")
    if python_type is datetime:
        return datetime.now(UTC)
    if python_type is bytes:
        return b"\x00\x01"
    if python_type is dict:
        return {"n": number}
    if python_type is list:
        return [number]
    raise TypeError(f"no sample for {column}")


def _missing_value(column: Column[Any]) -> Any:
    return 987_654_321 if column.type.python_type is int else "no-such-parent"


def build_row(
    connection: Connection, table: Table, orphan: ForeignKeyConstraint | None = None
) -> dict[str, Any]:
    """Values for every required column; required parents are inserted first. The
    columns of *orphan* point at a parent that does not exist."""
    row: dict[str, Any] = {}
    for column in table.columns:
        foreign_key = next(iter(column.foreign_keys), None)
        if foreign_key is not None:
            if orphan is not None and column.name in orphan.column_keys:
                row[column.name] = _missing_value(column)
            elif not column.nullable:
                row[column.name] = insert_parent(connection, foreign_key.column)
            continue
        if column.primary_key and column.type.python_type is int and len(table.primary_key) == 1:
            continue
        if column.nullable or column.default is not None or column.server_default is not None:
            continue
        row[column.name] = sample(column)
    return row


def insert_parent(connection: Connection, referenced: Column[Any]) -> Any:
    """Insert a valid row into the referenced column's table; return its key value."""
    table = referenced.table
    assert isinstance(table, Table)
    row = build_row(connection, table)
    result = connection.execute(table.insert().values(**row))
    if referenced.name in row:
        return row[referenced.name]
    return result.inserted_primary_key[0]
