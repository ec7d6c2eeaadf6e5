"""An independent exact P&L model for the tests: rationals (Fraction), cost basis
instead of an average price, no rounding anywhere."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction


@dataclass
class ExactBook:
    """Average-cost position kept as (signed quantity, signed cost basis)."""

    quantity: Fraction = Fraction(0)
    cost: Fraction = Fraction(0)
    realized: Fraction = Fraction(0)
    fees: Fraction = Fraction(0)
    cash: Fraction = Fraction(0)  # what was paid/received, fees excluded

    def fill(self, side: str, amount: Decimal, price: Decimal, fee: Decimal) -> None:
        a, p = Fraction(amount), Fraction(price)
        delta = a if side == "buy" else -a
        self.fees += Fraction(fee)
        self.cash -= delta * p
        if self.quantity == 0 or (self.quantity > 0) == (delta > 0):
            self.quantity += delta
            self.cost += delta * p
            return
        held = abs(self.quantity)
        sign = 1 if self.quantity > 0 else -1
        closed = min(a, held)
        removed = self.cost * closed / held
        self.realized += sign * closed * p - removed
        self.cost -= removed
        self.quantity += delta
        if self.quantity != 0 and (self.quantity > 0) != (sign > 0):
            self.cost = self.quantity * p

    def unrealized(self, price: Decimal) -> Fraction:
        return self.quantity * Fraction(price) - self.cost

    def average(self) -> Fraction:
        return self.cost / self.quantity if self.quantity else Fraction(0)


def rounding_bound(fills: int, volume: Decimal) -> Fraction:
    """Most the 18-place rounding of the library can move P&L after *fills* fills
    of total *volume*: each average moves <= 0.5e-18 per fill, each realization
    adds <= closed * that + 0.5e-18 (see trading.positions)."""
    return Fraction(fills) * (Fraction(volume) + 1) * Fraction(1, 10**18)
