"""The one exception tree of cryptotrading.

Every error raised on purpose by the library derives from :class:`CryptotradingError`
and carries a ``hint``: one sentence telling the user how to fix the problem. The CLI
prints ``error: <message>`` and ``hint: <hint>`` and exits with :attr:`exit_code`;
driver errors are translated into this tree once, at the database boundary
(:func:`cryptotrading.db.session.translate_errors`).

::

    CryptotradingError
    ├── ConfigurationError          bad settings, layout, URL or config file
    ├── DataDirError                data dir missing, not a directory or read-only
    ├── StoreError                  anything a database said
    │   ├── StoreUnavailableError   server unreachable, file cannot be opened
    │   ├── SchemaVersionError      database at an unknown, newer or older version
    │   ├── IntegrityViolationError constraint violated (FK, unique, check)
    │   └── StoreBusyError          lock not obtained in time
    ├── ValidationError             bad input data, nothing written
    ├── NotFoundError               a named object does not exist
    ├── ConflictError               the object's state forbids the change
    │   └── LeaseLostError          a message's lease passed to another delivery
    ├── AuthenticationError         password or API key rejected
    └── VaultError                  vault locked (wrong master key) or ciphertext altered
"""

from __future__ import annotations


class CryptotradingError(Exception):
    """Base of every error cryptotrading raises on purpose."""

    exit_code: int = 1
    default_hint: str = "Run the command again with --debug to see the full traceback."

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint

    def __str__(self) -> str:
        return self.message


class ConfigurationError(CryptotradingError):
    """Settings, layout, store URL or config file are invalid."""

    exit_code = 2
    default_hint = "Check CRYPTOTRADING_* environment variables and cryptotrading.toml."


class DataDirError(CryptotradingError):
    """The data directory is missing, not a directory or not writable."""

    exit_code = 2
    default_hint = "Point CRYPTOTRADING_DATA_DIR (or --data-dir) at a writable directory."


class StoreError(CryptotradingError):
    """A database reported an error."""

    exit_code = 3


class StoreUnavailableError(StoreError):
    """The database server cannot be reached or the file cannot be opened."""

    default_hint = "Check that the server is running and the URL (host, port, database) is right."


class SchemaVersionError(StoreError):
    """The database schema is at a version this release cannot work with."""

    exit_code = 4
    default_hint = "Run `cryptotrading init` (or `cryptotrading db upgrade`) to migrate to head."


class IntegrityViolationError(StoreError):
    """A constraint (foreign key, unique, not-null, check) rejected the write."""

    default_hint = "Fix the referenced rows or values; nothing was written."


class StoreBusyError(StoreError):
    """A lock could not be obtained within the busy timeout."""

    default_hint = "Another process holds a write lock; retry, or raise the busy timeout."


class ValidationError(CryptotradingError):
    """Input data is invalid; nothing was written."""

    exit_code = 5
    default_hint = "Correct the input and run the command again; nothing was written."


class NotFoundError(CryptotradingError):
    """A named object (store, table, record) does not exist."""

    exit_code = 6
    default_hint = "Check the name; list what exists with the matching `list` or `info` command."


class ConflictError(CryptotradingError):
    """The object exists but its current state forbids the change (a finished
    execution, a message already settled)."""

    exit_code = 9
    default_hint = "Show the object's current state and act on that."


class LeaseLostError(ConflictError):
    """A consumer settled a message whose lease had passed to a later delivery: another
    consumer holds it now, so this consumer's outcome is discarded."""

    default_hint = (
        "Process messages within their lease (extend it for long work) and make the "
        "processing idempotent: the message is being delivered again."
    )


class AuthenticationError(CryptotradingError):
    """A password or API key did not authenticate (deliberately vague: it never says
    whether the user exists)."""

    exit_code = 7
    default_hint = "Check the username and password (or API key); keys are shown only once."


class VaultError(CryptotradingError):
    """The credential vault cannot be unlocked or a stored ciphertext does not verify."""

    exit_code = 8
    default_hint = (
        "Set CRYPTOTRADING_MASTER_KEY (or CRYPTOTRADING_MASTER_KEY_FILE) to the master "
        "secret the vault was created with."
    )
