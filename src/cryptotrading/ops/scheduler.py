"""The spec's operations cadence as jobs that ``cryptotrading ops run`` runs when due.

=============  =========  ===========================================================
job            every      what
=============  =========  ===========================================================
replicate      5 min      apply the change logs to the replica (continuous replication)
agents         5 min      return messages whose lease passed to the queue (dead-letter
                          them after their last attempt), expire messages past their TTL,
                          delete expired agent contexts
health         1 hour     ``health --record``: snapshot for growth rates, alerts
cache-expiry   1 hour     delete expired rows of the three cache tables
backup-daily   1 day      daily backup of the application store, then prune; pgBackRest
                          differential of PostgreSQL stores set up for PITR
backup-weekly  7 days     weekly full backup of every store and the candle archive, prune;
                          pgBackRest full backup
archive        1 day      ``market archive --older-than 90d`` into <data dir>/archive,
                          then reclaim the market store's space
change-log     1 hour     archive the application change log beside the backups, trim
                          the logs below their archive and every replica
quality        1 day      ``market quality``: data_quality_metrics of every series (the
                          next ``health`` turns poor scores into alerts)
retention      1 day      delete monitoring rows, processed messages and quality
                          measurements past their retention settings (and, when
                          ``retention_deleted_days`` is set, purge soft-deleted rows)
reclaim        1 day      give free pages back (SQLite) / vacuum dead rows (PostgreSQL)
analyze        1 day      refresh the query planner's statistics (ANALYZE)
=============  =========  ===========================================================

Each run of a job is recorded in the app store's ``system_metrics``
(``ops_job_ok`` / ``ops_job_failed``, component ``job:<name>``, value = seconds);
a job is due when its last successful run is older than its interval (less a
small slack, so an hourly cron line never skips a beat). A file lock in the data
dir keeps two ``ops run`` from overlapping.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from cryptotrading import agents
from cryptotrading.common.views import AsDict
from cryptotrading.db.session import translate_errors
from cryptotrading.errors import (
    ConfigurationError,
    CryptotradingError,
    NotFoundError,
    ValidationError,
)
from cryptotrading.models import APP_LINEAGE, SystemMetric
from cryptotrading.ops import (
    backup,
    changelog_archive,
    health,
    maintenance,
    monitoring,
    pitr_postgres,
    reclaim,
    replication,
)
from cryptotrading.ops.retention import JOB_OK_METRIC, apply_retention, expire_caches
from cryptotrading.ops.soft_delete import purge_deleted
from cryptotrading.stores import Stores, ensure_data_dir

OK_METRIC = JOB_OK_METRIC  # retention keeps the newest one of each job
FAILED_METRIC = "ops_job_failed"
ARCHIVE_AFTER = timedelta(days=90)

_logger = logging.getLogger("cryptotrading.ops.scheduler")


@dataclass
class RunOptions:
    """Settings of one ``ops run``: where backups go and how many are kept."""

    backup_dir: Path | None = None
    keep_daily: int = backup.DEFAULT_KEEP_DAILY
    keep_weekly: int = backup.DEFAULT_KEEP_WEEKLY


JobFunction = Callable[[Stores, RunOptions], dict[str, Any]]


@dataclass(frozen=True)
class Job:
    name: str
    interval: timedelta
    description: str
    run: JobFunction

    @property
    def slack(self) -> timedelta:
        return min(timedelta(minutes=5), self.interval / 10)


@dataclass
class JobResult(AsDict):
    job: str
    status: str  # ok, failed, skipped
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class JobSkipped(Exception):
    """Raised by a job that has nothing to do in this layout or installation."""


# -- the jobs -------------------------------------------------------------------------


def _replicate(stores: Stores, _options: RunOptions) -> dict[str, Any]:
    try:
        replication.replica_store(stores)
    except CryptotradingError as exc:  # no replica configured, or not at head
        raise JobSkipped(str(exc)) from None
    runs = replication.replicate_once(stores)
    return {"rows": sum(r.rows for r in runs), "tables": len(runs)}


def _health(stores: Stores, _options: RunOptions) -> dict[str, Any]:
    report = health.check(stores)
    written = health.record(stores, report)
    detail = {"ok": report.ok, "alerts": [a.message for a in report.alerts], "recorded": written}
    if not report.ok:
        raise JobFailed("unhealthy: " + "; ".join(a.message for a in report.alerts), detail)
    return detail


def _agents(stores: Stores, _options: RunOptions) -> dict[str, Any]:
    """The agent queue's housekeeping: a consumer killed while holding messages loses
    nothing once their leases pass (claims do the same for their own receiver)."""
    engine = stores.engine(stores.app)
    swept = agents.requeue_expired(engine).as_dict()
    return {**swept, "contexts_purged": agents.purge_expired_contexts(engine)}


def _cache_expiry(stores: Stores, _options: RunOptions) -> dict[str, Any]:
    return expire_caches(stores)


def _backups(stores: Stores, options: RunOptions, kind: str, only: str | None) -> dict[str, Any]:
    directory = options.backup_dir or backup.default_directory(stores)
    made = backup.create_backups(stores, kind, directory, only=only)
    removed = backup.prune_backups(directory, options.keep_daily, options.keep_weekly)
    return {
        "created": [m.id for m in made],
        "bytes": sum(m.size_bytes for m in made),
        "pruned": [m.id for m in removed],
        "pitr": _pitr_backup(stores, options, kind),
    }


def _pitr_backup(stores: Stores, options: RunOptions, kind: str) -> list[str]:
    """pgBackRest's full (weekly) or differential (daily) backup of PostgreSQL stores
    set up for point-in-time recovery; nothing when none is."""
    try:
        made = pitr_postgres.backup(
            stores, kind=kind, keep_daily=options.keep_daily, keep_weekly=options.keep_weekly
        )
    except (ConfigurationError, NotFoundError):  # no PostgreSQL store, or no `backup setup`
        return []
    return [b.label for b in made]


def _change_log(stores: Stores, options: RunOptions) -> dict[str, Any]:
    """Archive the application change log beside the backups (SQLite point-in-time
    recovery replays it) and trim every log below its archive and its replicas."""
    directory = options.backup_dir or backup.default_directory(stores)
    app = stores.primary_for(APP_LINEAGE)
    archived = (
        changelog_archive.archive_log(stores, directory, app.name).as_dict()
        if app.path is not None
        else None
    )
    return {"archived": archived, "trimmed": changelog_archive.trim_logs(stores, directory)}


def _backup_daily(stores: Stores, options: RunOptions) -> dict[str, Any]:
    return _backups(stores, options, "daily", stores.app.name)


def _backup_weekly(stores: Stores, options: RunOptions) -> dict[str, Any]:
    return _backups(stores, options, "weekly", None)


def _archive(stores: Stores, _options: RunOptions) -> dict[str, Any]:
    """``market archive --older-than 90d`` into ``<data dir>/archive`` (the directory
    the market store merges into its reads)."""
    from cryptotrading.market.archive import archive_time_series  # pyarrow: only when run

    report = archive_time_series(
        stores.engine(stores.market), stores.settings.data_dir / "archive", ARCHIVE_AFTER
    )
    detail = report.as_dict()
    if report.rows:
        reclaimed = reclaim.reclaim_store(stores, stores.market, tables=["time_series"])
        detail["reclaim"] = reclaimed.as_dict()
    return detail


def _quality(stores: Stores, _options: RunOptions) -> dict[str, Any]:
    """``market quality`` over every stored series (rows in ``data_quality_metrics``;
    the next ``health`` raises an alert for each poor one)."""
    from cryptotrading.market.quality import quality_pass  # numpy/pandas: only when run
    from cryptotrading.market.store import MarketStore

    reports = quality_pass(MarketStore(stores))
    limit = health.Thresholds().min_quality_score
    poor = [
        f"{r.source} {r.symbol} {r.timeframe}"
        for r in reports
        if r.gaps_count or r.outliers_count or (limit is not None and r.overall_score < limit)
    ]
    return {"series": len(reports), "poor": len(poor), "poor_series": poor[:20]}


def _retention(stores: Stores, _options: RunOptions) -> dict[str, Any]:
    report = apply_retention(stores, expiry=False)
    detail: dict[str, Any] = {
        "rows": report.rows,
        "deleted": report.deleted,
        "vacuumed": report.vacuumed,
    }
    if stores.settings.retention_deleted_days > 0:
        purged = purge_deleted(stores, timedelta(days=stores.settings.retention_deleted_days))
        detail["purged_deleted"] = purged.as_dict()
    return detail


def _reclaim(stores: Stores, _options: RunOptions) -> dict[str, Any]:
    results = reclaim.reclaim(stores)
    return {
        "bytes_reclaimed": sum(r.bytes_reclaimed for r in results),
        "stores": {r.store: r.action for r in results},
    }


def _analyze(stores: Stores, _options: RunOptions) -> dict[str, Any]:
    return {r.store: round(r.seconds, 3) for r in maintenance.analyze(stores)}


class JobFailed(Exception):
    """A job ran but its outcome is a failure (e.g. the health check found alerts)."""

    def __init__(self, message: str, detail: dict[str, Any]) -> None:
        super().__init__(message)
        self.detail = detail


JOBS: tuple[Job, ...] = (
    Job("replicate", timedelta(minutes=5), "apply the change logs to the replica", _replicate),
    Job(
        "agents",
        timedelta(minutes=5),
        "requeue expired message leases, expire messages, purge contexts",
        _agents,
    ),
    Job("health", timedelta(hours=1), "health snapshot (growth rates) and alerts", _health),
    Job("cache-expiry", timedelta(hours=1), "delete expired cache rows", _cache_expiry),
    Job("backup-daily", timedelta(days=1), "daily backup of the app store + prune", _backup_daily),
    Job(
        "backup-weekly",
        timedelta(days=7),
        "weekly full backup of every store and the candle archive",
        _backup_weekly,
    ),
    Job("archive", timedelta(days=1), "archive candles older than 90 days", _archive),
    Job("change-log", timedelta(hours=1), "archive and trim the change logs", _change_log),
    Job("quality", timedelta(days=1), "data-quality pass over every series", _quality),
    Job("retention", timedelta(days=1), "delete rows past their retention", _retention),
    Job("reclaim", timedelta(days=1), "reclaim free space of every store", _reclaim),
    Job("analyze", timedelta(days=1), "refresh query-planner statistics", _analyze),
)


def job(name: str) -> Job:
    for candidate in JOBS:
        if candidate.name == name:
            return candidate
    raise ValidationError(
        f"unknown job {name!r}", hint=f"Choose one of: {', '.join(j.name for j in JOBS)}."
    )


# -- bookkeeping ----------------------------------------------------------------------


def last_runs(stores: Stores) -> dict[str, datetime]:
    """When each job last succeeded (jobs never run are absent)."""
    with translate_errors(stores.app.name), stores.engine(stores.app).connect() as connection:
        rows = connection.execute(
            select(SystemMetric.component, func.max(SystemMetric.recorded_at))
            .where(SystemMetric.metric_name == OK_METRIC)
            .group_by(SystemMetric.component)
        ).all()
    return {str(component).removeprefix("job:"): at for component, at in rows if at is not None}


def due_jobs(stores: Stores, now: datetime | None = None) -> list[Job]:
    now = now or datetime.now(UTC)
    last = last_runs(stores)
    return [j for j in JOBS if j.name not in last or now - last[j.name] >= j.interval - j.slack]


def _record(stores: Stores, result: JobResult) -> None:
    metric = OK_METRIC if result.status == "ok" else FAILED_METRIC
    with translate_errors(stores.app.name), stores.engine(stores.app).begin() as connection:
        connection.execute(
            insert(SystemMetric),
            {
                "metric_name": metric,
                "value": result.seconds,
                "unit": "s",
                "component": f"job:{result.job}",
                "tags": {"status": result.status, "error": result.error},
            },
        )


def run_job(stores: Stores, selected: Job, options: RunOptions) -> JobResult:
    """Run one job; failures are recorded (and logged to ``error_logs``), not raised."""
    started = time.perf_counter()
    try:
        detail = selected.run(stores, options)
        result = JobResult(selected.name, "ok", detail=detail)
    except JobSkipped as exc:
        result = JobResult(selected.name, "skipped", error=str(exc))
    except JobFailed as exc:
        result = JobResult(selected.name, "failed", detail=exc.detail, error=str(exc))
    except (CryptotradingError, SQLAlchemyError, OSError) as exc:
        _logger.exception("job %s failed", selected.name)
        result = JobResult(selected.name, "failed", error=getattr(exc, "message", str(exc)))
    result.seconds = round(time.perf_counter() - started, 3)
    if result.status != "skipped":
        # bookkeeping must not hide the job's outcome
        with contextlib.suppress(CryptotradingError, SQLAlchemyError):
            _record(stores, result)
    return result


@contextlib.contextmanager
def _exclusive(stores: Stores) -> Iterator[bool]:
    """A non-blocking lock file in the data dir: False when another run holds it."""
    ensure_data_dir(stores.settings.data_dir)
    path = stores.settings.data_dir / ".ops-run.lock"
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_due(
    stores: Stores,
    options: RunOptions | None = None,
    *,
    only: list[str] | None = None,
    force: bool = False,
) -> list[JobResult]:
    """Run every due job once (or the jobs named in *only*, due or not, or all with
    *force*). Returns [] when another ``ops run`` is in progress."""
    options = options or RunOptions()
    handler = monitoring.install_error_logging(stores.engine(stores.app), _logger)
    try:
        with _exclusive(stores) as acquired:
            if not acquired:
                return []
            if only:
                selected = [job(name) for name in only]
            else:
                selected = list(JOBS) if force else due_jobs(stores)
            return [run_job(stores, chosen, options) for chosen in selected]
    finally:
        _logger.removeHandler(handler)


def schedule(stores: Stores) -> list[dict[str, Any]]:
    """Every job with its interval, last success and next due time."""
    last = last_runs(stores)
    now = datetime.now(UTC)
    rows = []
    for item in JOBS:
        previous = last.get(item.name)
        due_at = previous + item.interval - item.slack if previous else now
        rows.append(
            {
                "job": item.name,
                "every_seconds": item.interval.total_seconds(),
                "description": item.description,
                "last_ok": previous.isoformat() if previous else None,
                "due_at": due_at.isoformat(),
                "due": due_at <= now,
            }
        )
    return rows


def loop(
    stores: Stores,
    options: RunOptions | None = None,
    *,
    tick: float = 60.0,
    rounds: int | None = None,
    on_round: Callable[[list[JobResult]], None] | None = None,
) -> None:
    """Run the due jobs every *tick* seconds (*rounds* times, or until interrupted)."""
    done = 0
    while rounds is None or done < rounds:
        results = run_due(stores, options)
        if on_round is not None:
            on_round(results)
        done += 1
        if rounds is None or done < rounds:
            time.sleep(tick)
