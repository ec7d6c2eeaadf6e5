"""Waking consumers that wait for messages, one small interface per backend.

PostgreSQL: a sender's transaction runs ``pg_notify`` on the receiver's channel, so
the notification is delivered exactly when the message becomes visible (at commit); a
waiting consumer ``LISTEN``s on its own connection and claims as soon as it is woken.
SQLite has no notifications: a waiting consumer polls, starting at 10 ms and doubling
up to half a second, so an idle consumer costs a few reads per second at most.

Who notifies (issue 13 review): a send (delayed ones too: the waiter then sleeps until
the message is due), a nack, the ack of a message of a FIFO group (the next one may
go), a re-drive, and the ``requeue_expired`` sweep. A listening connection that cannot
be opened is a StoreUnavailableError (it was the driver's error).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from cryptotrading.errors import StoreUnavailableError

#: Pseudo receiver whose channel wakes workflow runners when an execution starts.
EXECUTIONS_CHANNEL = "__workflow_executions__"
#: SQLite polling: first delay, growth factor and cap (seconds).
POLL_FIRST, POLL_GROWTH, POLL_MAX = 0.01, 2.0, 0.5


def channel(receiver_id: str) -> str:
    """The notification channel of *receiver_id*: a fixed-length safe identifier."""
    return "a2a_" + hashlib.blake2b(receiver_id.encode(), digest_size=12).hexdigest()


def notify(session: Session, receiver_ids: set[str] | list[str]) -> None:
    """Wake the consumers waiting for *receiver_ids* when this transaction commits
    (PostgreSQL; a no-op on SQLite)."""
    if session.connection().dialect.name != "postgresql":
        return
    for receiver in sorted(set(receiver_ids)):
        session.execute(sql_text("SELECT pg_notify(:c, '')"), {"c": channel(receiver)})


class Waiter(Protocol):
    """Blocks until a message may be there for the receiver, or *seconds* pass."""

    def wait(self, seconds: float) -> None: ...

    def reset(self) -> None:
        """Something happened: the next wait starts short again (polling only)."""


class _Polling:
    def __init__(self) -> None:
        self.delay = POLL_FIRST

    def wait(self, seconds: float) -> None:
        time.sleep(max(0.0, min(self.delay, seconds)))
        self.delay = min(self.delay * POLL_GROWTH, POLL_MAX)

    def reset(self) -> None:
        self.delay = POLL_FIRST


class _Listening:
    def __init__(self, connection: object) -> None:
        self.connection = connection

    def wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        # psycopg 3: a generator of notifications; stop after the first or the timeout.
        for _ in self.connection.notifies(timeout=seconds, stop_after=1):  # type: ignore[attr-defined]
            break

    def reset(self) -> None:
        """A notification ends a wait at once: nothing to reset."""


@contextmanager
def waiter(engine: Engine, *receiver_ids: str) -> Iterator[Waiter]:
    """A :class:`Waiter` woken for any of *receiver_ids*; on PostgreSQL it listens from
    the moment it is entered (so a message sent between a claim and the wait is not
    missed)."""
    if engine.dialect.name != "postgresql":
        yield _Polling()
        return
    import psycopg  # the driver of PostgreSQL stores; only needed here

    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        connection = psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        raise StoreUnavailableError(
            f"app store: cannot listen for new messages: {str(exc).strip().splitlines()[0]}"
        ) from exc
    with connection:
        for receiver_id in receiver_ids:
            connection.execute(f'LISTEN "{channel(receiver_id)}"')
        yield _Listening(connection)
