"""Statement timing: every engine the stores open is timed, slow statements are kept.

:func:`install_slow_query_hook` times every statement of an engine (SQLAlchemy
``before_cursor_execute`` / ``after_cursor_execute`` events). Statements slower than
the threshold are kept in a small in-process buffer -- never written from inside the
hook, where the statement's own transaction may hold the write lock -- and
:func:`flush_slow_queries` stores them in ``system_metrics`` (``metric_name =
'slow_query'``). ``cryptotrading health --record`` flushes, and so does the process
at exit. :meth:`cryptotrading.stores.Stores.engine` installs it (:func:`watch_engine`).
Calls that bypass the cursor events -- the market store's raw ``sqlite3`` / psycopg
reads and writes -- are timed by a :class:`StatementTimer` into the same buffer.

It sits beside the engines (foundation), below ``models``: the rows go into
``system_metrics`` through a Core table naming only the columns written here
(:data:`SYSTEM_METRICS`; a test holds it to the model).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Double, Engine, String, column, event, insert, table

from cryptotrading.common.clock import utcnow
from cryptotrading.db.engine import create_store_engine
from cryptotrading.db.types import JSONDocument, UTCDateTime

SLOW_QUERY_METRIC = "slow_query"
MAX_BUFFERED = 1_000
MAX_STATEMENT = 2_000

_logger = logging.getLogger(__name__)

#: The columns of ``system_metrics`` a slow query fills (the model is
#: :class:`cryptotrading.models.SystemMetric`, a layer above).
SYSTEM_METRICS = table(
    "system_metrics",
    column("metric_name", String(128)),
    column("value", Double()),
    column("unit", String(32)),
    column("component", String(128)),
    column("tags", JSONDocument),
    column("recorded_at", UTCDateTime()),
)


@dataclass(frozen=True)
class SlowQuery:
    """A statement that took longer than the threshold."""

    store: str
    statement: str
    milliseconds: float
    at: datetime
    #: The app store that keeps it (never shown: the URL may carry a password).
    app_url: str = field(default="", repr=False)

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        del values["app_url"]
        return {**values, "at": self.at.isoformat()}

    def metric_row(self) -> dict[str, Any]:
        return {
            "metric_name": SLOW_QUERY_METRIC,
            "value": round(self.milliseconds, 3),
            "unit": "ms",
            "component": f"store:{self.store}",
            "tags": {"statement": self.statement},
            "recorded_at": self.at,
        }


_buffer: deque[SlowQuery] = deque(maxlen=MAX_BUFFERED)
_buffer_lock = threading.Lock()
_flush_targets: dict[str, int] = {}  # app-store URL -> busy timeout, flushed at exit


def install_slow_query_hook(
    engine: Engine, store: str, threshold_ms: float, app_url: str = ""
) -> None:
    """Time every statement of *engine*; remember those slower than *threshold_ms*
    (to be stored in the app store at *app_url*)."""
    if getattr(engine, "_cryptotrading_slow_hook", False):
        return
    engine._cryptotrading_slow_hook = True  # type: ignore[attr-defined]

    @event.listens_for(engine, "before_cursor_execute")
    def _start(
        _conn: Any, _cursor: Any, _stmt: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if context is not None:
            context._cryptotrading_started = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _stop(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        started = getattr(context, "_cryptotrading_started", None)
        if started is None:
            return
        elapsed = (time.perf_counter() - started) * 1000
        if elapsed >= threshold_ms:
            record_slow_query(
                SlowQuery(
                    store,
                    " ".join(statement.split())[:MAX_STATEMENT],
                    elapsed,
                    utcnow(),
                    app_url,
                )
            )


@dataclass(frozen=True)
class StatementTimer:
    """Times statements that bypass SQLAlchemy's cursor events -- the market store's
    raw ``sqlite3`` / psycopg calls -- with the same threshold and buffer as
    :func:`install_slow_query_hook`."""

    store: str
    threshold_ms: float
    app_url: str = field(default="", repr=False)

    @contextmanager
    def timed(self, statement: str) -> Iterator[None]:
        """Time the block; when it took at least the threshold (finished or not),
        buffer it as a slow query described by *statement*."""
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            if elapsed >= self.threshold_ms:
                record_slow_query(
                    SlowQuery(
                        self.store,
                        " ".join(statement.split())[:MAX_STATEMENT],
                        elapsed,
                        utcnow(),
                        self.app_url,
                    )
                )


def record_slow_query(query: SlowQuery) -> None:
    with _buffer_lock:
        _buffer.append(query)


def buffered_slow_queries() -> list[SlowQuery]:
    with _buffer_lock:
        return list(_buffer)


def take_slow_queries(app_url: str | None = None) -> list[SlowQuery]:
    """Remove and return the buffered slow queries (only those kept for *app_url*)."""
    with _buffer_lock:
        taken = [q for q in _buffer if app_url is None or q.app_url == app_url]
        kept = [q for q in _buffer if app_url is not None and q.app_url != app_url]
        _buffer.clear()
        _buffer.extend(kept)
    return taken


def flush_slow_queries(engine: Engine, app_url: str | None = None) -> int:
    """Store the buffered slow queries (of *app_url*, or all) in ``system_metrics`` of
    *engine* (the app store); returns how many. On failure they go back into the buffer."""
    queries = take_slow_queries(app_url)
    if not queries:
        return 0
    try:
        with engine.begin() as connection:
            connection.execute(insert(SYSTEM_METRICS), [q.metric_row() for q in queries])
    except Exception:
        with _buffer_lock:
            _buffer.extendleft(reversed(queries))
        raise
    return len(queries)


def flush_at_exit(app_url: str, busy_timeout_ms: int) -> None:
    """Flush slow queries into the app store at interpreter exit (registered once)."""
    if not _flush_targets:
        atexit.register(_flush_registered)
    _flush_targets[app_url] = busy_timeout_ms


def _flush_registered() -> None:
    if not buffered_slow_queries():
        return
    for url, busy_timeout_ms in list(_flush_targets.items()):
        if not any(q.app_url == url for q in buffered_slow_queries()):
            continue
        engine = create_store_engine(url, busy_timeout_ms=min(busy_timeout_ms, 2_000))
        try:
            flush_slow_queries(engine, url)
        except Exception as exc:  # exit path: report, never raise
            _logger.warning("could not store slow queries: %s", exc)
        finally:
            engine.dispose()


def watch_engine(
    engine: Engine, store: str, threshold_ms: float, app_url: str, busy_ms: int
) -> None:
    """Install the slow-query hook on *engine* and flush its findings into the app
    store (*app_url*) at exit. Called by :meth:`cryptotrading.stores.Stores.engine`."""
    install_slow_query_hook(engine, store, threshold_ms, app_url)
    flush_at_exit(app_url, busy_ms)
