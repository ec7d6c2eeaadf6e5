"""Small helpers of the services tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session


def count(engine: Engine, model: Any) -> int:
    """Number of rows in *model*'s table."""
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)
