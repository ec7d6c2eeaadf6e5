"""Declarative base, naming convention and the mixins every model shares."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import MetaData, String, event, func, inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from cryptotrading.common.clock import utcnow
from cryptotrading.db.actor import MAX_ACTOR, current_actor
from cryptotrading.db.types import BigInt, ExactDecimal, JSONDocument, UTCDateTime

#: One naming convention for every constraint and index, so migrations are
#: deterministic and `db check` can compare names across backends.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of all models. ``__table__.info['since']`` names the schema version
    that added the table (see the migration history)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        int: BigInt,
        datetime: UTCDateTime(),
        Decimal: ExactDecimal(),
        dict[str, Any]: JSONDocument,
        list[Any]: JSONDocument,
    }


class IdMixin:
    """Surrogate integer primary key."""

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True, sort_order=-100)


class CreatedAtMixin:
    """Creation time, set by the ORM or, for raw inserts, the database."""

    created_at: Mapped[datetime] = mapped_column(
        default=utcnow, server_default=func.current_timestamp(), sort_order=100
    )


class TimestampMixin(CreatedAtMixin):
    """Creation and last-update times, set by the database and the ORM."""

    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.current_timestamp(), sort_order=101
    )


class SoftDeleteMixin:
    """Audit-relevant rows are never deleted, only marked: when (``deleted_at``) and by
    whom (``deleted_by``, schema 2.3.0; :func:`cryptotrading.db.actor.current_actor`).
    ``cryptotrading db restore-deleted`` unmarks a row, ``db purge-deleted`` removes
    rows marked long enough ago."""

    deleted_at: Mapped[datetime | None] = mapped_column(default=None, sort_order=102)
    deleted_by: Mapped[str | None] = mapped_column(
        String(MAX_ACTOR), default=None, sort_order=103, info={"since": "2.3.0"}
    )

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def soft_delete(self, by: str | None = None) -> None:
        self.deleted_at = utcnow()
        self.deleted_by = (by or current_actor())[:MAX_ACTOR]


@event.listens_for(Session, "before_flush")
def _record_deleter(session: Session, _context: Any, _instances: Any) -> None:
    """Keep ``deleted_by`` in step when code sets ``deleted_at`` directly: the acting
    user when a row is marked, nobody when it is unmarked (revived)."""
    for row in (*session.new, *session.dirty):
        if not isinstance(row, SoftDeleteMixin):
            continue
        state = inspect(row).attrs
        if row.deleted_at is None:
            if row.deleted_by is not None:
                row.deleted_by = None
        elif state.deleted_at.history.added and not state.deleted_by.history.added:
            row.deleted_by = current_actor()
