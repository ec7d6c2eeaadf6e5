"""Exact decimal arithmetic for money and quantities.

Every stored amount fits the schema's ``NUMERIC(38, 18)``: at most 20 digits before
the point and 18 after. Inputs with more digits are refused (never silently rounded);
the only rounding the library does is of results of a division or of a product with
more than 18 decimals, half-even to 18 places (:func:`quantize`), identically on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from cryptotrading.db.types import DECIMAL_PRECISION, DECIMAL_SCALE, to_decimal
from cryptotrading.errors import ValidationError

#: The smallest stored unit: 1e-18.
QUANTUM = Decimal(1).scaleb(-DECIMAL_SCALE)
#: Largest magnitude a NUMERIC(38, 18) column holds.
LIMIT = Decimal(10) ** (DECIMAL_PRECISION - DECIMAL_SCALE)
ZERO = Decimal(0)

#: Enough precision that products and sums of stored values are exact.
_CONTEXT = Context(prec=120, rounding=ROUND_HALF_EVEN)


@contextmanager
def exact() -> Iterator[None]:
    """Run the block with a decimal context wide enough for exact products."""
    with localcontext(_CONTEXT):
        yield


def quantize(value: Decimal) -> Decimal:
    """*value* rounded half-even to 18 decimal places (the stored scale)."""
    with exact():
        return value.quantize(QUANTUM)


def parse(value: Any, what: str, *, positive: bool = False, allow_zero: bool = True) -> Decimal:
    """*value* (str, int or Decimal -- never float) as an exact, storable Decimal.

    Raises :class:`ValidationError` naming *what* when it is not a finite number,
    has more than 18 decimals, is too large, or breaks the sign requirement.
    """
    try:
        number = to_decimal(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{what}: {exc}",
            hint=f"Give {what} as a decimal string such as '0.25' (floats are refused).",
        ) from None
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DECIMAL_SCALE and number != quantize(number):
        raise ValidationError(
            f"{what} {number} has more than {DECIMAL_SCALE} decimal places",
            hint=f"Round {what} to at most {DECIMAL_SCALE} decimals.",
        )
    if abs(number) >= LIMIT:
        raise ValidationError(
            f"{what} {number} is too large (limit {LIMIT:.0e})",
            hint="Check the units of the value.",
        )
    if positive and (number < 0 or (number == 0 and not allow_zero)):
        condition = "positive" if not allow_zero else "zero or positive"
        raise ValidationError(
            f"{what} must be {condition}, got {number}",
            hint=f"Give a {condition} {what}.",
        )
    return number + ZERO  # normalises -0 to 0


def storable(value: Decimal, what: str) -> Decimal:
    """*value* unchanged when a NUMERIC(38, 18) column holds it, else a
    :class:`ValidationError` (the same limit on SQLite and PostgreSQL)."""
    if abs(value) >= LIMIT:
        raise ValidationError(
            f"{what} would become {value:.6e}, beyond the storable {LIMIT:.0e}",
            hint="Check the units of amounts and prices; nothing was written.",
        )
    return value
