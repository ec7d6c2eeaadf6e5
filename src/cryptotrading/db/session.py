"""Units of work and the translation of driver errors into :mod:`cryptotrading.errors`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy import text as sql_text
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

#: SQLite primary result codes (``sqlite3.Error.sqlite_errorcode & 0xFF``) by kind.
_SQLITE_KINDS = {
    5: "busy",  # SQLITE_BUSY
    6: "busy",  # SQLITE_LOCKED
    8: "read-only",  # SQLITE_READONLY
    11: "damaged",  # SQLITE_CORRUPT
    14: "unavailable",  # SQLITE_CANTOPEN
    19: "integrity",  # SQLITE_CONSTRAINT
    26: "damaged",  # SQLITE_NOTADB
}
#: PostgreSQL SQLSTATEs (exact, then by class: the first two characters) by kind.
_SQLSTATE_KINDS = {
    "55P03": "busy",  # lock_not_available
    "40P01": "busy",  # deadlock_detected
    "40001": "busy",  # serialization_failure
    "25006": "read-only",  # read_only_sql_transaction
    "3D000": "unavailable",  # invalid_catalog_name: the database does not exist
    "57P01": "unavailable",  # admin_shutdown
    "57P03": "unavailable",  # cannot_connect_now
    "XX001": "damaged",  # data_corrupted
    "XX002": "damaged",  # index_corrupted
    "23": "integrity",  # integrity constraint violation
    "08": "unavailable",  # connection exception
    "28": "unavailable",  # invalid authorization
}


def _kind(exc: DBAPIError) -> str | None:
    """What went wrong, from the driver's error class and code, never its message."""
    if isinstance(exc, IntegrityError):
        return "integrity"
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return _SQLITE_KINDS.get(code & 0xFF)
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return _SQLSTATE_KINDS.get(sqlstate) or _SQLSTATE_KINDS.get(sqlstate[:2])
    if isinstance(exc, OperationalError):
        # psycopg's connection failures (refused, unknown host, timeout) carry no SQLSTATE
        return "unavailable"
    return None


def translate(exc: DBAPIError, where: str = "database") -> CryptotradingError:
    """The :class:`CryptotradingError` for a driver error raised by *where*."""
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    kind = _kind(exc)
    if kind == "integrity":
        return IntegrityViolationError(f"{where}: constraint violated: {detail}")
    if kind == "read-only":
        return DataDirError(
            f"{where}: the database is read-only: {detail}",
            hint="Make the data dir and its database files writable by this user.",
        )
    if kind == "damaged":
        return StoreError(
            f"{where}: the database file is damaged: {detail}",
            hint="Run `cryptotrading db check` to see what is damaged, then restore the "
            "newest verified backup (`cryptotrading backup list`, `backup restore ID`).",
        )
    if kind == "busy":
        return StoreBusyError(f"{where}: {detail}")
    if kind == "unavailable":
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


def serialise(session: Session, name: str) -> None:
    """Serialise writers of *name* until the transaction ends: an advisory lock on
    PostgreSQL; on SQLite the ``BEGIN IMMEDIATE`` write lock already does."""
    if session.connection().dialect.name == "postgresql":
        session.execute(sql_text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
