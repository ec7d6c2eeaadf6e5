"""Input checks shared by the domains: each returns the checked value or raises a
:class:`~cryptotrading.errors.ValidationError` that names the value (*what*).

Text is stored exactly as given: :func:`text` refuses a non-string, an empty or
blank-only string and one longer than *limit* characters, but never strips or
rewrites it -- what a caller stores (a rationale, a memory, an identifier) is what it
reads back, and a lookup matches the stored value exactly.
"""

from __future__ import annotations

import json
import math
from typing import Any

from cryptotrading.errors import ValidationError


def _shown(value: Any) -> str:
    """*value*'s repr for a message, at most 64 characters (never raising: a
    5000-digit integer has no repr)."""
    try:
        shown = repr(value)
    except ValueError:
        return f"<{type(value).__name__} too large to show>"
    return shown if len(shown) <= 64 else shown[:61] + "..."


def text(value: Any, what: str, *, limit: int) -> str:
    """A string of 1 to *limit* characters that is not blank, unchanged."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{what} must be a non-empty string", hint=f"Give a {what}.")
    if len(value) > limit:
        raise ValidationError(
            f"{what} is longer than {limit} characters", hint=f"Shorten the {what}."
        )
    return value


def optional_text(value: Any, what: str, *, limit: int) -> str | None:
    """:func:`text`, or None."""
    return None if value is None else text(value, what, limit=limit)


def json_value(value: Any, what: str) -> Any:
    """*value* if it is strict JSON: no NaN or infinity (``1e400`` parses as inf),
    string keys, plain types, not nested beyond the interpreter's recursion limit."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ValidationError(
            f"{what} is not strict JSON: {reason}",
            hint=f"Pass {what} as plain dicts, lists, strings, finite numbers, booleans or null.",
        ) from None
    return value


def required_document(value: Any, what: str) -> dict[str, Any]:
    """A JSON object (dict) of strict JSON."""
    if not isinstance(value, dict):
        raise ValidationError(
            f"{what} must be a JSON object, got {type(value).__name__}",
            hint=f"Pass {what} as a dict / JSON object.",
        )
    result: dict[str, Any] = json_value(value, what)
    return result


def document(value: Any, what: str) -> dict[str, Any] | None:
    """:func:`required_document`, or None."""
    return None if value is None else required_document(value, what)


def number(value: Any, what: str, *, low: float | None = None, high: float | None = None) -> float:
    """A finite float (not a bool) within [low, high]."""
    if isinstance(value, bool):
        raise ValidationError(f"{what} {value!r} is not a number", hint=f"Give {what} as a number.")
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(
            f"{what} {_shown(value)} is not a number", hint=f"Give {what} as a number."
        ) from None
    if math.isnan(result) or math.isinf(result):
        raise ValidationError(f"{what} must be finite", hint=f"Give {what} as a finite number.")
    if (low is not None and result < low) or (high is not None and result > high):
        bounds = f"{'-inf' if low is None else low}..{'inf' if high is None else high}"
        raise ValidationError(
            f"{what} {_shown(value)} is outside {bounds}", hint=f"Give {what} within {bounds}."
        )
    return result


def integer(value: Any, what: str, *, low: int | None = None, high: int | None = None) -> int:
    """An int (not a bool) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            f"{what} {_shown(value)} is not an integer", hint=f"Give {what} as a whole number."
        )
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"{'-inf' if low is None else low}..{'inf' if high is None else high}"
        raise ValidationError(
            f"{what} {_shown(value)} is outside {bounds}", hint=f"Give {what} within {bounds}."
        )
    return value


def probability(value: Any, what: str = "confidence") -> float:
    """A probability in [0, 1]."""
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(
            f"{what} {_shown(value)} is not a number", hint="Give a number between 0 and 1."
        ) from None
    if math.isnan(result) or not 0.0 <= result <= 1.0:
        raise ValidationError(
            f"{what} {_shown(value)} is outside 0..1", hint="Give a number between 0 and 1."
        )
    return result
