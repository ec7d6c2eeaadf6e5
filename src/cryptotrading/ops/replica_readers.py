"""Registered replicas (``replica_readers``): list them, forget one that is gone.

Every replica that ran a change-log pass is registered in the application store with
its position in each source's log, and the logs are trimmed only below every one of
them. A replica that is gone for good would keep the logs from being trimmed forever:
:func:`forget` removes its registration (if it ever comes back, its position names the
log it read, and a trimmed log makes it copy everything again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Table, delete, select

from cryptotrading.common.clock import epoch_ms
from cryptotrading.common.views import AsDict
from cryptotrading.db.session import translate_errors
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.models import APP_LINEAGE, ReplicaReader
from cryptotrading.stores import Stores

_READERS: Table = ReplicaReader.__table__  # type: ignore[assignment]
#: Longest replica name accepted (the column holds 512 characters).
MAX_NAME = 512


@dataclass
class Reader(AsDict):
    """One registered replica's position in one lineage's logs."""

    replica: str
    lineage: str
    position: str
    registered_at: str
    age_seconds: float


def readers(stores: Stores) -> list[Reader]:
    """Every registered replica and lineage, oldest registration first."""
    app = stores.primary_for(APP_LINEAGE)
    now = epoch_ms()
    with translate_errors(app.name), stores.engine(app).connect() as connection:
        rows = connection.execute(select(_READERS).order_by(_READERS.c.updated_at)).all()
    return [
        Reader(
            str(row.replica),
            str(row.lineage),
            str(row.position),
            datetime.fromtimestamp(int(row.updated_at) / 1000, UTC).isoformat(),
            round(max(0.0, (now - int(row.updated_at)) / 1000), 3),
        )
        for row in rows
    ]


def forget(stores: Stores, replica: str) -> int:
    """Remove every registration of *replica* (as :func:`readers` names it); returns the
    rows removed. A name that is registered nowhere is a NotFoundError."""
    if not isinstance(replica, str) or not replica.strip() or len(replica) > MAX_NAME:
        raise ValidationError(
            f"{str(replica)[:80]!r} is not a replica name",
            hint="Copy the name from `cryptotrading replicate readers`.",
        )
    app = stores.primary_for(APP_LINEAGE)
    with translate_errors(app.name), stores.engine(app).begin() as connection:
        removed = connection.execute(delete(_READERS).where(_READERS.c.replica == replica))
    count = int(removed.rowcount or 0)
    if not count:
        known = sorted({r.replica for r in readers(stores)})
        raise NotFoundError(
            f"no replica {replica[:80]!r} is registered",
            hint="Registered: "
            + (", ".join(known) if known else "none")
            + " (`cryptotrading replicate readers`).",
        )
    return count
