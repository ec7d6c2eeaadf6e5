"""What the services share beyond the general input checks (those are in
:mod:`cryptotrading.common.checks`): the store they use, read sessions and the
per-name write serialisation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from cryptotrading.db.session import read_session as db_read_session

WHERE = "app store"


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read-only unit of work on the app store (see :func:`db.session.read_session`)."""
    with db_read_session(engine, WHERE) as session:
        yield session


def serialise(session: Session, name: str) -> None:
    """Serialise writers of *name* until the transaction ends: an advisory lock on
    PostgreSQL; on SQLite the ``BEGIN IMMEDIATE`` write lock already does."""
    if session.connection().dialect.name == "postgresql":
        session.execute(sql_text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
