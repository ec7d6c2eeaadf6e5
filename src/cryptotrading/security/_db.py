"""Sessions for the security services."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cryptotrading.db.engine import READ_ONLY
from cryptotrading.db.session import translate_errors


@contextmanager
def read_session(engine: Engine, where: str) -> Iterator[Session]:
    """A read-only session (a shared lock on SQLite), driver errors translated."""
    reader = engine.execution_options(**{READ_ONLY: True})
    with translate_errors(where), Session(reader, expire_on_commit=False) as session:
        yield session
