"""The schema-version table: one row per applied schema version of a store."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cryptotrading.common.clock import utcnow
from cryptotrading.models._common import Base, IdMixin, table_args


class SchemaVersion(IdMixin, Base):
    """A schema version applied by a migration (human-readable history;
    Alembic's own version table holds the machine state)."""

    __tablename__ = "schema_versions"
    __table_args__ = table_args("1.0.0")

    version: Mapped[str] = mapped_column(String(16), unique=True)
    description: Mapped[str] = mapped_column(Text)
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)
