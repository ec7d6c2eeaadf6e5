"""Error logging into ``error_logs``: :class:`ErrorLogHandler` is a
:class:`logging.Handler` writing records at ERROR or above, with their stack traces.

``cryptotrading ops run`` installs it for its jobs (:func:`install_error_logging`).
Statement timing (slow queries) lives beside the engines, in
:mod:`cryptotrading.db.timing`.
"""

from __future__ import annotations

import logging
import threading
import traceback

from sqlalchemy import Engine, insert

from cryptotrading.models import ErrorLog


class ErrorLogHandler(logging.Handler):
    """Writes log records at ERROR and above, with stack traces, into ``error_logs``.

    Each record is one short transaction on the app store. Failures to write are
    reported through :meth:`logging.Handler.handleError`, never raised; records
    emitted while writing (e.g. by the driver) are not logged again.
    """

    def __init__(self, engine: Engine, component: str | None = None) -> None:
        super().__init__(level=logging.ERROR)
        self.engine = engine
        self.component = component
        self._writing = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._writing, "active", False):
            return
        self._writing.active = True
        try:
            if record.exc_info and record.exc_info[0] is not None:
                error_type = record.exc_info[0].__name__
                stack = "".join(traceback.format_exception(*record.exc_info))
            else:
                error_type = record.levelname
                stack = record.stack_info or "".join(traceback.format_stack()[:-1])
            with self.engine.begin() as connection:
                connection.execute(
                    insert(ErrorLog),
                    {
                        "error_type": error_type[:128],
                        "message": record.getMessage(),
                        "stack_trace": stack,
                        "component": (self.component or record.name)[:128],
                        "context": {
                            "logger": record.name,
                            "level": record.levelname,
                            "module": record.module,
                            "function": record.funcName,
                            "line": record.lineno,
                            "process": record.process,
                            "thread": record.threadName,
                        },
                    },
                )
        except Exception:
            self.handleError(record)
        finally:
            self._writing.active = False


def install_error_logging(
    engine: Engine, logger: logging.Logger | str = "cryptotrading", component: str | None = None
) -> ErrorLogHandler:
    """Attach an :class:`ErrorLogHandler` (writing through *engine*) to *logger*."""
    target = logging.getLogger(logger) if isinstance(logger, str) else logger
    for handler in target.handlers:
        if isinstance(handler, ErrorLogHandler) and handler.engine is engine:
            return handler
    handler = ErrorLogHandler(engine, component)
    target.addHandler(handler)
    return handler
