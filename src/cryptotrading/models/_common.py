"""Helpers shared by the model modules: table args carrying the schema version."""

from __future__ import annotations

from typing import Any

from cryptotrading.db.base import (
    Base,
    CreatedAtMixin,
    IdMixin,
    SoftDeleteMixin,
    TimestampMixin,
)

__all__ = ["Base", "CreatedAtMixin", "IdMixin", "SoftDeleteMixin", "TimestampMixin", "table_args"]

APP_LINEAGE = "app"
MARKET_LINEAGE = "market"


def table_args(since: str, *items: Any, lineage: str = APP_LINEAGE, **kwargs: Any) -> Any:
    """``__table_args__`` recording the schema version that added the table and the
    migration lineage (store) that owns it."""
    options: dict[str, Any] = {"info": {"since": since, "lineage": lineage}, **kwargs}
    return (*items, options)
