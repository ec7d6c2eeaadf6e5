"""JSON-ready views of ORM rows and values, for the CLI and other interfaces.

:func:`row_view` is the one way to turn a row into a dict: the named columns (or
every column) with datetimes as ISO-8601 text (:func:`~cryptotrading.common.clock.iso`),
decimals as plain text without trailing zeros (:func:`decimal_text`: money and
quantities stay exact in JSON) and bytes as ``<N bytes>`` (never their content).
Other values (ints, floats, strings, JSON documents, None) pass unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import inspect

from cryptotrading.common.clock import iso


def decimal_text(value: Decimal | None) -> str | None:
    """Plain (non-scientific) text of *value* without trailing zeros, or None."""
    if value is None:
        return None
    if value == 0:
        return "0"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def jsonable(value: Any) -> Any:
    """*value* as it appears in a view (see the module docstring)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    return value


def row_view(
    row: Any, fields: Sequence[str] | None = None, *, exclude: Sequence[str] = ()
) -> dict[str, Any]:
    """The JSON-ready dict of an ORM object: *fields* in that order (default: every
    column attribute in mapper order), without those in *exclude*."""
    names = fields if fields is not None else [a.key for a in inspect(row).mapper.column_attrs]
    return {name: jsonable(getattr(row, name)) for name in names if name not in exclude}


class AsDict:
    """Mixin for dataclasses: :meth:`as_dict` gives the fields (nested dataclasses
    too) as a plain dict, the form the CLI prints as JSON."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(cast(Any, self))
