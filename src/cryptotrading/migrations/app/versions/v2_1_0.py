"""2.1.0: ingestion batches in the market store (no table change in the app store)

Revision ID: 2.1.0
Revises: 2.0.0
"""
from __future__ import annotations

from collections.abc import Sequence

from cryptotrading.migrations.helpers import forget_version, record_version

revision: str = '2.1.0'
down_revision: str | None = '2.0.0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    record_version('2.1.0', 'ingestion_batches: per-batch progress of import and download jobs, committed with the candles (market store)')


def downgrade() -> None:
    forget_version('2.1.0')
