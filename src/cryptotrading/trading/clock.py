"""Times: everything is timezone-aware UTC; naive input is taken as UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptotrading.errors import ValidationError


def as_utc(value: datetime) -> datetime:
    """*value* as an aware UTC datetime (naive = UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def maybe_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def iso(value: datetime | None) -> str | None:
    """ISO-8601 text of *value*, or None (for JSON views)."""
    return None if value is None else value.isoformat()


def parse_time(text: str, what: str = "time") -> datetime:
    """An ISO-8601 time (``2021-01-04``, ``2021-01-04T12:00``, ``...+02:00``) in UTC."""
    hint = "Use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM] (UTC when no offset)."
    try:
        return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ValidationError(f"{what} {text[:64]!r} is not an ISO-8601 time", hint=hint) from None
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValidationError(
            f"{what} {text[:64]!r} is outside the calendar in UTC", hint=hint
        ) from None
