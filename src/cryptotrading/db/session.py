"""Units of work and the translation of driver errors into :mod:`cryptotrading.errors`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from cryptotrading.db.engine import READ_ONLY
from cryptotrading.errors import (
    CryptotradingError,
    DataDirError,
    IntegrityViolationError,
    StoreBusyError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
)

_UNAVAILABLE = (
    "unable to open database file",
    "connection refused",
    "could not connect",
    "connection failed",
    "does not exist",
    "no such host",
    "name or service not known",
    "timeout expired",
)


#: SQLite's messages for a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB).
_DAMAGED = ("database disk image is malformed", "file is not a database")


def translate(exc: DBAPIError, where: str = "database") -> CryptotradingError:
    """The :class:`CryptotradingError` for a driver error raised by *where*."""
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    lowered = detail.lower()
    if isinstance(exc, IntegrityError):
        return IntegrityViolationError(f"{where}: constraint violated: {detail}")
    if "readonly database" in lowered or "read-only" in lowered:
        return DataDirError(
            f"{where}: the database is read-only: {detail}",
            hint="Make the data dir and its database files writable by this user.",
        )
    if any(text in lowered for text in _DAMAGED):
        return StoreError(
            f"{where}: the database file is damaged: {detail}",
            hint="Run `cryptotrading db check` to see what is damaged, then restore the "
            "newest verified backup (`cryptotrading backup list`, `backup restore ID`).",
        )
    if "locked" in lowered or "could not obtain lock" in lowered:
        return StoreBusyError(f"{where}: {detail}")
    if isinstance(exc, OperationalError) and any(text in lowered for text in _UNAVAILABLE):
        return StoreUnavailableError(f"{where} is unavailable: {detail}")
    return StoreError(f"{where}: {detail}")


@contextmanager
def translate_errors(where: str = "database") -> Iterator[None]:
    """Re-raise driver errors inside the block as cryptotrading errors."""
    try:
        yield
    except DBAPIError as exc:
        raise translate(exc, where) from exc
    except (OverflowError, UnicodeEncodeError) as exc:
        # Values the driver cannot bind: an integer beyond 64 bits, text with lone
        # surrogates (undecodable command-line bytes).
        raise ValidationError(
            f"{where}: a value cannot be stored or looked up: {exc}",
            hint="Use integers within 64 bits and text that is valid Unicode.",
        ) from exc


@contextmanager
def unit_of_work(engine: Engine, where: str = "database") -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error,
    driver errors translated. Nothing is written unless the whole block succeeds."""
    with (
        translate_errors(where),
        Session(engine, expire_on_commit=False) as session,
        session.begin(),
    ):
        yield session


@contextmanager
def read_session(engine: Engine, where: str = "database") -> Iterator[Session]:
    """A unit of work for reading: SQLite opens it with a deferred BEGIN (a shared
    lock, so readers never queue behind the write lock); driver errors translated."""
    with unit_of_work(engine.execution_options(**{READ_ONLY: True}), where) as session:
        yield session
