"""Input checks shared by the intelligence services."""

from __future__ import annotations

import json
import math
from typing import Any

from cryptotrading.errors import ValidationError


def text(value: Any, what: str, *, limit: int) -> str:
    """A non-empty string of at most *limit* characters."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{what} must be a non-empty string", hint=f"Give a {what}.")
    if len(value) > limit:
        raise ValidationError(
            f"{what} is longer than {limit} characters", hint=f"Shorten the {what}."
        )
    return value


def probability(value: Any, what: str = "confidence") -> float:
    """A probability in [0, 1]."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"{what} {value!r} is not a number", hint="Give a number between 0 and 1."
        ) from None
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise ValidationError(
            f"{what} {value!r} is outside 0..1", hint="Give a number between 0 and 1."
        )
    return number


def document(value: Any, what: str) -> dict[str, Any] | None:
    """A JSON object (dict) or None."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(
            f"{what} must be a JSON object, got {type(value).__name__}",
            hint=f"Pass {what} as a dict / JSON object.",
        )
    try:  # strict JSON: no NaN or infinity (1e400 parses as inf), no odd keys or types
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ValidationError(
            f"{what} is not strict JSON: {reason}",
            hint=f"Pass {what} as plain dicts, lists, strings, finite numbers, booleans or null.",
        ) from None
    return value
