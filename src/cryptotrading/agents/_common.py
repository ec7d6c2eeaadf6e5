"""What the agents modules share: the store they use and its read sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cryptotrading.db.session import read_session as db_read_session
from cryptotrading.db.session import serialise

__all__ = ["WHERE", "read_session", "serialise"]

WHERE = "app store"


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read-only unit of work on the app store."""
    with db_read_session(engine, WHERE) as session:
        yield session
