"""Input checks, read sessions and row conversion shared by the services."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from cryptotrading.db.session import read_session as db_read_session
from cryptotrading.errors import ValidationError

WHERE = "app store"


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read-only unit of work on the app store (see :func:`db.session.read_session`)."""
    with db_read_session(engine, WHERE) as session:
        yield session


def text(value: Any, what: str, *, limit: int) -> str:
    """A non-empty string of at most *limit* characters, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{what} must be a non-empty string", hint=f"Give a {what}.")
    stripped: str = value.strip()
    if len(stripped) > limit:
        raise ValidationError(
            f"{what} is longer than {limit} characters", hint=f"Shorten the {what}."
        )
    return stripped


def optional_text(value: Any, what: str, *, limit: int) -> str | None:
    return None if value is None else text(value, what, limit=limit)


def json_value(value: Any, what: str) -> Any:
    """*value* if it is strict JSON (no NaN/inf, str keys); a ValidationError otherwise."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{what} is not JSON-serialisable: {exc}",
            hint=f"Pass {what} as plain dicts, lists, strings, numbers, booleans or null.",
        ) from None
    return value


def document(value: Any, what: str) -> dict[str, Any] | None:
    """A JSON object (dict) or None."""
    return None if value is None else required_document(value, what)


def required_document(value: Any, what: str) -> dict[str, Any]:
    """A JSON object (dict)."""
    if not isinstance(value, dict):
        raise ValidationError(
            f"{what} must be a JSON object, got {type(value).__name__}",
            hint=f"Pass {what} as a dict / JSON object.",
        )
    result: dict[str, Any] = json_value(value, what)
    return result


def number(value: Any, what: str, *, low: float | None = None, high: float | None = None) -> float:
    """A finite float within [low, high]."""
    if isinstance(value, bool):
        raise ValidationError(f"{what} {value!r} is not a number", hint=f"Give {what} as a number.")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"{what} {value!r} is not a number", hint=f"Give {what} as a number."
        ) from None
    if math.isnan(result) or math.isinf(result):
        raise ValidationError(f"{what} must be finite", hint=f"Give {what} as a finite number.")
    if (low is not None and result < low) or (high is not None and result > high):
        bounds = f"{'-inf' if low is None else low}..{'inf' if high is None else high}"
        raise ValidationError(
            f"{what} {value!r} is outside {bounds}", hint=f"Give {what} within {bounds}."
        )
    return result


def integer(value: Any, what: str, *, low: int | None = None, high: int | None = None) -> int:
    """An int (not bool) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            f"{what} {value!r} is not an integer", hint=f"Give {what} as a whole number."
        )
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"{'-inf' if low is None else low}..{'inf' if high is None else high}"
        raise ValidationError(
            f"{what} {value} is outside {bounds}", hint=f"Give {what} within {bounds}."
        )
    return value


def utc(value: Any, what: str) -> datetime:
    """A datetime made timezone-aware UTC (naive taken as UTC)."""
    if not isinstance(value, datetime):
        raise ValidationError(
            f"{what} {value!r} is not a datetime", hint=f"Pass {what} as a datetime (UTC)."
        )
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def maybe_utc(value: Any, what: str) -> datetime | None:
    return None if value is None else utc(value, what)


def serialise(session: Session, name: str) -> None:
    """Serialise writers of *name* until the transaction ends: an advisory lock on
    PostgreSQL; on SQLite the ``BEGIN IMMEDIATE`` write lock already does."""
    if session.connection().dialect.name == "postgresql":
        session.execute(sql_text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
