"""The queue's tunables in one value (from :class:`~cryptotrading.settings.Settings`),
and the retry backoff they define."""

from __future__ import annotations

import random
from dataclasses import dataclass

from cryptotrading.settings import Settings


@dataclass(frozen=True)
class QueuePolicy:
    """How the agent message queue behaves; see the ``a2a_*`` settings."""

    open_messaging: bool = False
    max_payload_bytes: int = 256 * 1024
    lease_seconds: float = 30.0
    max_attempts: int = 5
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 300.0

    @classmethod
    def from_settings(cls, settings: Settings) -> QueuePolicy:
        return cls(
            open_messaging=settings.a2a_open_messaging,
            max_payload_bytes=settings.a2a_max_payload_bytes,
            lease_seconds=settings.a2a_lease_seconds,
            max_attempts=settings.a2a_max_attempts,
            backoff_base_seconds=settings.a2a_backoff_base_seconds,
            backoff_max_seconds=settings.a2a_backoff_max_seconds,
        )

    def backoff(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds before the next delivery after *attempts* failed ones: exponential
        (base * 2**(attempts-1), capped at the maximum) with "equal jitter" -- half of
        it fixed, half uniformly random -- so retries of many messages spread out."""
        exponent = min(max(attempts - 1, 0), 62)
        delay = min(self.backoff_max_seconds, self.backoff_base_seconds * 2.0**exponent)
        return delay / 2 + (rng or random).uniform(0, delay / 2)


DEFAULT_POLICY = QueuePolicy()
