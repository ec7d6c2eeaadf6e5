"""Plain-dict views of service rows (for JSON output)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect


def as_dict(row: Any, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The column values of an ORM object (bytes columns as their length)."""
    data: dict[str, Any] = {}
    for attr in inspect(row).mapper.column_attrs:
        if attr.key in exclude:
            continue
        value = getattr(row, attr.key)
        if isinstance(value, bytes):
            value = f"<{len(value)} bytes>"
        data[attr.key] = value
    return data
