"""Tables beyond the spec's 46, each added by one capability in its own schema version.

``EXTENSIONS`` documents every one: the version that added it, why, and whether it
is replicated, backed up and derived (rebuildable from other tables).
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cryptotrading.models._common import MARKET_LINEAGE, Base, table_args


class IngestionBatch(Base):
    """One committed batch of an import or download job, written in the same market
    transaction as its candles: the job's true progress after a crash (the job row
    lives in the app store, which a kill can leave one batch behind)."""

    __tablename__ = "ingestion_batches"
    __table_args__ = table_args("2.1.0", lineage=MARKET_LINEAGE)

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rows: Mapped[int] = mapped_column(Integer)
    changed: Mapped[int] = mapped_column(Integer)
    #: Epoch ms of the batch's write (the market lineage's change column).
    ingested_at: Mapped[int] = mapped_column(BigInteger)


class Extension(NamedTuple):
    """Why a table beyond the spec exists and how operations treat it."""

    since: str
    reason: str
    replicated: bool
    backed_up: bool
    derived: bool


EXTENSIONS: dict[str, Extension] = {
    "ingestion_batches": Extension(
        "2.1.0",
        "per-batch progress of import/download jobs, committed with the candles",
        replicated=True,
        backed_up=True,
        derived=False,
    ),
}
