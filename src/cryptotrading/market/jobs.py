"""``data_ingestion_jobs``: one row per import or download, with progress and outcome.

The ``params`` JSON column holds the job's inputs, its resume cursor (``cursor``:
epoch ms of the next candle to fetch) and the ``host``/``pid`` of the process running
it. A job left ``running`` by a process that died (kill -9, power loss) is marked
``failed`` when the next job of the same kind, source, symbol and timeframe starts.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

import psutil
from sqlalchemy import select

from cryptotrading.common.clock import utcnow
from cryptotrading.db.session import unit_of_work
from cryptotrading.models.quality import DataIngestionJob
from cryptotrading.stores import Stores


class JobRecorder:
    """Create and update one ``data_ingestion_jobs`` row in the app store."""

    def __init__(
        self,
        stores: Stores,
        *,
        job_type: str,
        source: str | None,
        symbol: str | None,
        timeframe: str | None,
        params: dict[str, Any],
        committed: Callable[[str], tuple[int, int]] | None = None,
    ) -> None:
        """*committed* gives (batches, candles) of a job committed to the market store
        (``MarketStore.committed_batches``): an orphan's true progress."""
        self.engine = stores.engine(stores.app)
        self.job_id = f"{job_type}-{uuid.uuid4().hex[:16]}"
        self.params = dict(params)
        self.params.update(host=socket.gethostname(), pid=os.getpid())
        self.rows = 0
        with unit_of_work(self.engine, "app store") as session:
            orphans = session.scalars(
                select(DataIngestionJob).where(
                    DataIngestionJob.status == "running",
                    DataIngestionJob.job_type == job_type,
                    DataIngestionJob.symbol == symbol,
                    DataIngestionJob.timeframe == timeframe,
                    DataIngestionJob.source.is_(None)
                    if source is None
                    else DataIngestionJob.source == source,
                )
            ).all()
            for orphan in orphans:
                if _process_gone(orphan.params or {}):
                    orphan.status = "failed"
                    kept = "its committed batches are kept"
                    if committed is not None:
                        batches, rows = committed(orphan.job_id)
                        orphan.rows_processed = rows
                        kept = f"its {batches} committed batch(es), {rows} candles, are kept"
                    orphan.error_message = (
                        f"the process running it (pid {(orphan.params or {}).get('pid')}) "
                        f"ended without finishing; {kept}"
                    )
                    orphan.completed_at = utcnow()
            session.add(
                DataIngestionJob(
                    job_id=self.job_id,
                    job_type=job_type,
                    source=source,
                    symbol=symbol,
                    timeframe=timeframe,
                    status="running",
                    progress_percentage=0.0,
                    rows_processed=0,
                    params=self.params,
                    started_at=utcnow(),
                )
            )

    def _update(self, **values: Any) -> None:
        with unit_of_work(self.engine, "app store") as session:
            job = session.scalars(
                select(DataIngestionJob).where(DataIngestionJob.job_id == self.job_id)
            ).one()
            for name, value in values.items():
                setattr(job, name, value)

    def progress(self, rows: int, percentage: float, **params: Any) -> None:
        """Record *rows* processed so far and merge *params* (e.g. the cursor)."""
        self.rows = rows
        self.params.update(params)
        self._update(
            rows_processed=rows,
            progress_percentage=max(0.0, min(100.0, percentage)),
            params=dict(self.params),
        )

    def finish(self, **params: Any) -> None:
        self.params.update(params)
        self._update(
            status="completed",
            progress_percentage=100.0,
            rows_processed=self.rows,
            params=dict(self.params),
            completed_at=utcnow(),
        )

    def fail(self, error: BaseException, *, cancelled: bool = False) -> None:
        self._update(
            status="cancelled" if cancelled else "failed",
            rows_processed=self.rows,
            error_message=f"{type(error).__name__}: {error}"[:2000],
            params=dict(self.params),
            completed_at=utcnow(),
        )


def _process_gone(params: dict[str, Any]) -> bool:
    """True when the job's process is known and no longer runs on this host."""
    pid = params.get("pid")
    if params.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    return pid != os.getpid() and not psutil.pid_exists(pid)


def job_status(stores: Stores, job_id: str) -> dict[str, Any]:
    """One job as a plain dict (for the CLI and tests)."""
    with unit_of_work(stores.engine(stores.app), "app store") as session:
        job = session.scalars(
            select(DataIngestionJob).where(DataIngestionJob.job_id == job_id)
        ).one()
        return {
            "job_id": job.job_id,
            "job_type": job.job_type,
            "source": job.source,
            "symbol": job.symbol,
            "timeframe": job.timeframe,
            "status": job.status,
            "progress_percentage": job.progress_percentage,
            "rows_processed": job.rows_processed,
            "error_message": job.error_message,
            "params": job.params,
        }
