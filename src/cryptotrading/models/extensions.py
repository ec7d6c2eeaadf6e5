"""Tables beyond the spec's 46, each added by one capability in its own schema version.

``EXTENSIONS`` documents every one: the version that added it, why, and whether it
is replicated, backed up and derived (rebuildable from other tables).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cryptotrading.models._common import (
    APP_LINEAGE,
    MARKET_LINEAGE,
    Base,
    CreatedAtMixin,
    IdMixin,
    TimestampMixin,
    table_args,
)

#: A 64-bit sequence that SQLite numbers with AUTOINCREMENT (never reused after a trim).
_SEQ = BigInteger().with_variant(Integer(), "sqlite")


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


class _RowChanges:
    """Columns of a row change log, filled by database triggers (see
    :mod:`cryptotrading.migrations.capture`) in the transaction that changed the row."""

    seq: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    table_name: Mapped[str] = mapped_column(String(64))
    #: I(nsert), U(pdate) or D(elete).
    op: Mapped[str] = mapped_column(String(1))
    #: JSON array of the primary-key values.
    row_key: Mapped[str] = mapped_column(Text)
    #: SQLite only: JSON object of the row after the change (point-in-time recovery).
    row_image: Mapped[str | None] = mapped_column(Text)
    #: Epoch ms when the trigger ran.
    changed_at: Mapped[int] = mapped_column(BigInteger)
    #: PostgreSQL only: the writing transaction's id (pg_current_xact_id).
    txid: Mapped[int | None] = mapped_column(BigInteger)


class ChangeLog(_RowChanges, Base):
    """Every insert, update and delete of a replicated application table."""

    __tablename__ = "change_log"
    __table_args__ = table_args(
        "2.2.0", Index(None, "changed_at"), Index(None, "txid"), sqlite_autoincrement=True
    )


class MarketChangeLog(_RowChanges, Base):
    """Every insert, update and delete of a replicated market table but ``time_series``."""

    __tablename__ = "market_change_log"
    __table_args__ = table_args(
        "2.2.0",
        Index(None, "changed_at"),
        Index(None, "txid"),
        lineage=MARKET_LINEAGE,
        sqlite_autoincrement=True,
    )


class SeriesChange(Base):
    """A key range of ``time_series`` changed by one batch or statement (one row per
    candle only for writers outside the library on SQLite)."""

    __tablename__ = "series_changes"
    __table_args__ = table_args(
        "2.2.0", Index(None, "txid"), lineage=MARKET_LINEAGE, sqlite_autoincrement=True
    )

    seq: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(32))
    frequency: Mapped[str] = mapped_column(String(8))
    exchange: Mapped[str] = mapped_column(String(32))
    first_ts: Mapped[int] = mapped_column(BigInteger)
    last_ts: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[int] = mapped_column(BigInteger)
    txid: Mapped[int | None] = mapped_column(BigInteger)


class ReplicationCursor(Base):
    """In a replica: how far it has applied each source's change log, written in the
    transaction that applied the changes (a store holding cursors is a replica)."""

    __tablename__ = "replication_cursors"
    __table_args__ = table_args("2.2.0", lineage=APP_LINEAGE)

    lineage: Mapped[str] = mapped_column(String(16), primary_key=True)
    #: JSON: the position (SQLite: last seq; PostgreSQL: transaction-id window + seq).
    position: Mapped[str] = mapped_column(Text)
    #: The source store (display URL) the position refers to.
    source: Mapped[str] = mapped_column(String(512))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class ReplicaReader(Base):
    """In the application store: each registered replica's applied position per
    lineage; a change log is trimmed only below every reader's position."""

    __tablename__ = "replica_readers"
    __table_args__ = table_args("2.2.0", lineage=APP_LINEAGE)

    replica: Mapped[str] = mapped_column(String(512), primary_key=True)
    lineage: Mapped[str] = mapped_column(String(16), primary_key=True)
    position: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class A2AWorkflowVersion(IdMixin, CreatedAtMixin, Base):
    """Every definition a workflow has had (2.4.0): an execution runs the version it
    started with, whatever is defined later."""

    __tablename__ = "a2a_workflow_versions"
    __table_args__ = table_args("2.4.0", UniqueConstraint("workflow_id", "version"))

    workflow_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("a2a_workflows.workflow_id", ondelete="CASCADE")
    )
    version: Mapped[int]
    name: Mapped[str | None] = mapped_column(String(128))
    definition: Mapped[dict[str, Any]]


class A2AWorkflowStep(IdMixin, TimestampMixin, Base):
    """One step of one execution (2.4.0): status, attempts, timing, the message that
    asked for it and the reply's output, recorded by the workflow runner."""

    __tablename__ = "a2a_workflow_steps"
    __table_args__ = table_args(
        "2.4.0", UniqueConstraint("execution_id", "step_id"), Index(None, "status", "deadline_at")
    )

    execution_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("a2a_workflow_executions.execution_id", ondelete="CASCADE")
    )
    step_id: Mapped[str] = mapped_column(String(64))
    #: waiting, sent, completed, failed, cancelled
    status: Mapped[str] = mapped_column(String(20), default="waiting")
    agent_id: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(default=0)
    #: Matches the reply to this step (the request message's correlation id).
    correlation_id: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(64))
    input_data: Mapped[dict[str, Any] | None]
    output_data: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    #: While ``sent``: when the attempt times out; while ``waiting`` after a failed
    #: attempt: when the next one may be sent.
    deadline_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class A2AProcessedKey(IdMixin, Base):
    """An idempotency key a consumer has processed (2.4.0), written in the transaction
    of the processing and the acknowledgement: a redelivered message is acknowledged
    with the stored result instead of being processed twice."""

    __tablename__ = "a2a_processed_keys"
    __table_args__ = table_args(
        "2.4.0", UniqueConstraint("consumer_id", "idempotency_key"), Index(None, "processed_at")
    )

    consumer_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("a2a_agents.agent_id", ondelete="CASCADE")
    )
    idempotency_key: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any] | None]
    processed_at: Mapped[datetime]


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
    "change_log": Extension(
        "2.2.0",
        "inserts, updates and deletes of application tables, written by triggers in the "
        "changing transaction: replication and point-in-time recovery (SQLite)",
        replicated=False,
        backed_up=True,
        derived=False,
    ),
    "market_change_log": Extension(
        "2.2.0",
        "the same change log for the market tables other than time_series",
        replicated=False,
        backed_up=True,
        derived=False,
    ),
    "series_changes": Extension(
        "2.2.0",
        "key ranges of time_series changed per batch: replication without a log row per candle",
        replicated=False,
        backed_up=True,
        derived=False,
    ),
    "replication_cursors": Extension(
        "2.2.0",
        "a replica's applied position per source, committed with the applied rows",
        replicated=False,
        backed_up=True,
        derived=False,
    ),
    "replica_readers": Extension(
        "2.2.0",
        "registered replicas and their positions: the change log is trimmed below them",
        replicated=False,
        backed_up=True,
        derived=False,
    ),
    "a2a_workflow_versions": Extension(
        "2.4.0",
        "every definition a workflow has had: an execution runs the version it started with",
        replicated=True,
        backed_up=True,
        derived=False,
    ),
    "a2a_workflow_steps": Extension(
        "2.4.0",
        "each step of each workflow execution: status, attempts, timing, request and output",
        replicated=True,
        backed_up=True,
        derived=False,
    ),
    "a2a_processed_keys": Extension(
        "2.4.0",
        "idempotency keys a consumer has processed, committed with the processing: "
        "exactly-once effects over at-least-once delivery",
        replicated=True,
        backed_up=True,
        derived=False,
    ),
}
