"""The queue's tunables in one value (from :class:`~cryptotrading.settings.Settings`),
and the retry backoff they define.

A policy is checked when it is made (issue 13 review): a NaN, an infinite or an
out-of-range value (a backoff beyond the calendar, a lease of minus one second) is a
ValidationError naming the field -- a ConfigurationError naming the setting from
:meth:`QueuePolicy.from_settings` -- instead of failing later inside a nack or a claim.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any

from cryptotrading.common.checks import integer, number
from cryptotrading.errors import ConfigurationError, ValidationError
from cryptotrading.settings import Settings

#: Bounds of each numeric field (the same as those of the per-call arguments).
BOUNDS: dict[str, tuple[float, float]] = {
    "max_payload_bytes": (2, 1 << 30),
    "lease_seconds": (0.001, 7 * 86_400),
    "max_attempts": (1, 1000),
    "backoff_base_seconds": (0, 10**7),
    "backoff_max_seconds": (0, 10**7),
}


@dataclass(frozen=True)
class QueuePolicy:
    """How the agent message queue behaves; see the ``a2a_*`` settings."""

    open_messaging: bool = False
    max_payload_bytes: int = 256 * 1024
    lease_seconds: float = 30.0
    max_attempts: int = 5
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 300.0

    def __post_init__(self) -> None:
        if not isinstance(self.open_messaging, bool):
            raise ValidationError(
                "open_messaging must be True or False", hint="Give open_messaging as a bool."
            )
        for name in ("max_payload_bytes", "max_attempts"):
            low, high = BOUNDS[name]
            integer(getattr(self, name), name, low=int(low), high=int(high))
        for name in ("lease_seconds", "backoff_base_seconds", "backoff_max_seconds"):
            low, high = BOUNDS[name]
            object.__setattr__(self, name, number(getattr(self, name), name, low=low, high=high))

    @classmethod
    def from_settings(cls, settings: Settings) -> QueuePolicy:
        values: dict[str, Any] = {
            "open_messaging": settings.a2a_open_messaging,
            "max_payload_bytes": settings.a2a_max_payload_bytes,
            "lease_seconds": settings.a2a_lease_seconds,
            "max_attempts": settings.a2a_max_attempts,
            "backoff_base_seconds": settings.a2a_backoff_base_seconds,
            "backoff_max_seconds": settings.a2a_backoff_max_seconds,
        }
        try:
            return cls(**values)
        except ValidationError as exc:
            field = next((f.name for f in fields(cls) if exc.message.startswith(f.name)), "")
            raise ConfigurationError(
                f"setting a2a_{field}: {exc.message}",
                hint=f"Set CRYPTOTRADING_A2A_{field.upper()} within the bounds given.",
            ) from None

    def backoff(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds before the next delivery after *attempts* failed ones: exponential
        (base * 2**(attempts-1), capped at the maximum) with "equal jitter" -- half of
        it fixed, half uniformly random -- so retries of many messages spread out."""
        exponent = min(max(attempts - 1, 0), 62)
        delay = min(self.backoff_max_seconds, self.backoff_base_seconds * 2.0**exponent)
        return delay / 2 + (rng or random).uniform(0, delay / 2)


DEFAULT_POLICY = QueuePolicy()
