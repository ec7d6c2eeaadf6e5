"""Login throttling: after too many failed password logins, an account name is
locked for a while -- before any password is checked.

Failures are counted per account name (case-insensitive, existing or not, so the
lock reveals nothing about which accounts exist) in one ``cache_entries`` row,
``login-failures:<name>``, whose ``expires_at`` is the end of the counting window or
of the lock. Counting is serialised by the database (``BEGIN IMMEDIATE`` on SQLite,
``SELECT ... FOR UPDATE`` on PostgreSQL), so concurrent attempts from several
processes are all counted. Expired rows are ignored and removed by the hourly
``cache-expiry`` job; ``cryptotrading users unlock NAME`` lifts a lock at once.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select

from cryptotrading.common.clock import utcnow
from cryptotrading.db.session import read_session, unit_of_work
from cryptotrading.errors import AuthenticationError, IntegrityViolationError, ValidationError
from cryptotrading.models.caching import CacheEntry

KEY_PREFIX = "login-failures:"


@dataclass(frozen=True)
class LoginPolicy:
    """*max_failures* failed logins within *window* lock the name for *lockout*."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.window <= timedelta(0) or self.lockout <= timedelta(0):
            raise ValidationError(
                "invalid login policy: max_failures, window and lockout must be positive",
                hint="e.g. LoginPolicy(max_failures=5, window=timedelta(minutes=15)).",
            )


def throttle_key(username: str) -> str:
    """The ``cache_key`` counting failures of *username*: long names, and names a
    database cannot store as text (NUL, lone surrogates), are hashed."""
    name = username.strip().casefold()
    if len(name) > 200 or "\x00" in name or not _utf8(name):
        name = "sha256:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return KEY_PREFIX + name


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class LoginThrottle:
    """Counts failed logins per name in the app store reached through *engine*."""

    def __init__(self, engine: Engine, policy: LoginPolicy | None = None) -> None:
        self.engine = engine
        self.policy = policy or LoginPolicy()

    def check(self, username: str) -> bool:
        """Raise :class:`AuthenticationError` while *username* is locked; return whether
        failures are being counted for it (a later success then clears them)."""
        now = utcnow()
        with read_session(self.engine, "users") as session:
            entry = session.scalar(
                select(CacheEntry).where(CacheEntry.cache_key == throttle_key(username))
            )
            if entry is None or _expired(entry, now):
                return False
            failures = int((entry.value or {}).get("failures", 0))
            if failures >= self.policy.max_failures and entry.expires_at is not None:
                wait = math.ceil((entry.expires_at - now).total_seconds())
                raise AuthenticationError(
                    f"too many failed logins for {username!r}; try again in {wait} s",
                    hint="Wait for the lock to expire, or ask an administrator to run "
                    f"`cryptotrading users unlock {username}`.",
                )
            return True

    def record_failure(self, username: str) -> int:
        """Count one failed login; returns the failures in the current window."""
        try:
            return self._record_failure(username)
        except IntegrityViolationError:  # a concurrent first failure inserted the row
            return self._record_failure(username)

    def _record_failure(self, username: str) -> int:
        now = utcnow()
        key = throttle_key(username)
        with unit_of_work(self.engine, "users") as session:
            entry = session.scalar(
                select(CacheEntry).where(CacheEntry.cache_key == key).with_for_update()
            )
            if entry is None:
                entry = CacheEntry(cache_key=key, value={}, hit_count=0)
                session.add(entry)
            if _expired(entry, now) or not entry.value:
                failures = 1
                entry.value = {"failures": 1, "first_failure_at": now.isoformat()}
            else:
                failures = int(entry.value.get("failures", 0)) + 1
                entry.value = {**entry.value, "failures": failures}
            locked = failures >= self.policy.max_failures
            span = self.policy.lockout if locked else self.policy.window
            if failures == 1 or locked:
                entry.expires_at = now + span
                entry.ttl_seconds = int(span.total_seconds())
            session.flush()
            return failures

    def clear(self, username: str) -> bool:
        """Forget the failures of *username* (after a success, or to unlock it)."""
        with unit_of_work(self.engine, "users") as session:
            result = session.execute(
                delete(CacheEntry).where(CacheEntry.cache_key == throttle_key(username))
            )
            return bool(getattr(result, "rowcount", 0))


def _expired(entry: CacheEntry, now: datetime) -> bool:
    return entry.expires_at is not None and entry.expires_at <= now
