"""Which tables the replica carries: every table of both lineages except those whose
``EXTENSIONS`` entry says ``replicated=False`` (bookkeeping such as the change log)."""

from __future__ import annotations

from sqlalchemy import Table

from cryptotrading.models import APP_LINEAGE, EXTENSIONS, MARKET_LINEAGE, lineage_tables

LINEAGES = (APP_LINEAGE, MARKET_LINEAGE)


def replicated_tables(lineage: str) -> list[Table]:
    """Replicated tables of *lineage*, parents before children."""
    return [
        table
        for table in lineage_tables(lineage)
        if table.name not in EXTENSIONS or EXTENSIONS[table.name].replicated
    ]
