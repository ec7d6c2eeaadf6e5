"""Who is acting: the name recorded as ``deleted_by`` when a row is soft-deleted.

By default the operating-system user running the process; a service acting for
someone else (an HTTP API key's owner, an agent) wraps the work in
:func:`acting_as`.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: Longest name stored (the width of ``deleted_by``).
MAX_ACTOR = 128

_actor: ContextVar[str | None] = ContextVar("cryptotrading_actor", default=None)


def process_user() -> str:
    """The operating-system user of this process (``uid:N`` when it has no name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (containers)
        return f"uid:{os.getuid()}"


def current_actor() -> str:
    """The name of whoever acts now: set by :func:`acting_as`, else the OS user."""
    return (_actor.get() or process_user())[:MAX_ACTOR]


@contextmanager
def acting_as(name: str) -> Iterator[None]:
    """Record *name* as the actor of the changes made inside the block."""
    if not name or not name.strip():
        raise ValueError("the actor needs a name")
    token = _actor.set(name.strip()[:MAX_ACTOR])
    try:
        yield
    finally:
        _actor.reset(token)
