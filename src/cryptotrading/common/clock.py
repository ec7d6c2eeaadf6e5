"""The UTC clock: every time the library stores or shows is timezone-aware UTC.

Naive datetimes are taken as UTC; :func:`as_utc` / :func:`maybe_utc` also check
that they were given a datetime at all (library callers pass Python values).
Two ISO-8601 forms are produced: :func:`iso` for datetimes (``datetime.isoformat``,
``2021-01-04T10:00:00+00:00``, with microseconds when there are any) and
:func:`iso_ms` for epoch-millisecond candle and trade times
(``2021-01-04T10:00:00Z``, second precision, never raising).
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptotrading.errors import ValidationError

_TIME_HINT = "Use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM] (UTC when no offset)."


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def as_utc(value: object, what: str = "time") -> datetime:
    """*value* as an aware UTC datetime (naive = UTC); anything but a datetime is a
    :class:`ValidationError` naming *what*."""
    if not isinstance(value, datetime):
        raise ValidationError(
            f"{what} must be a datetime, got {type(value).__name__}",
            hint=f"Pass {what} as a datetime (UTC).",
        )
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def maybe_utc(value: object, what: str = "time") -> datetime | None:
    """:func:`as_utc` of *value*, or None."""
    return None if value is None else as_utc(value, what)


def iso(value: datetime | None) -> str | None:
    """ISO-8601 text of *value* with ``T`` and an offset (``2021-01-04T10:00:00+00:00``;
    a naive *value* is UTC), or None."""
    if value is None:
        return None
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


def iso_ms(timestamp_ms: int) -> str:
    """``2021-01-01T00:00:00Z`` for an epoch-ms timestamp (``<N> ms`` when the
    calendar cannot show it); never raises, so error messages can always use it."""
    try:
        moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return f"{timestamp_ms} ms (outside the calendar)"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, what: str = "time") -> datetime:
    """An ISO-8601 time (``2021-01-04``, ``2021-01-04T12:00``, ``...+02:00``) in UTC."""
    try:
        return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ValidationError(
            f"{what} {text[:64]!r} is not an ISO-8601 time", hint=_TIME_HINT
        ) from None
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValidationError(
            f"{what} {text[:64]!r} is outside the calendar in UTC", hint=_TIME_HINT
        ) from None


def epoch_ms(value: datetime | None = None) -> int:
    """Epoch milliseconds of *value* (default: now), UTC."""
    return int((value or utcnow()).timestamp() * 1000)
