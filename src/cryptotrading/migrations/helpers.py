"""Operations the revision files share beyond what Alembic renders."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

_schema_versions = sa.table(
    "schema_versions",
    sa.column("version", sa.String),
    sa.column("description", sa.Text),
    sa.column("applied_at", sa.DateTime),
)


def record_version(version: str, description: str) -> None:
    """Add *version* to the human-readable ``schema_versions`` history."""
    applied_at = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        applied_at = applied_at.replace(tzinfo=None)
    op.bulk_insert(
        _schema_versions,
        [{"version": version, "description": description, "applied_at": applied_at}],
    )


def forget_version(version: str) -> None:
    """Remove *version* from ``schema_versions`` (on downgrade)."""
    op.execute(_schema_versions.delete().where(_schema_versions.c.version == version))


def on_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"
