"""``cryptotrading health``: sizes, growth, slow queries, host and data-quality alerts."""

from __future__ import annotations

import typer

from cryptotrading.cli._common import open_stores
from cryptotrading.cli._output import JsonOption, console, emit, print_table
from cryptotrading.ops import health as health_ops


def _render(report: health_ops.HealthReport, written: int | None) -> None:
    host = report.host
    console.print(
        f"host: CPU {host.cpu_percent:.0f}%, memory {host.memory_percent:.0f}%, "
        f"disk {host.disk_free_percent:.1f}% free ({host.disk_free_bytes} bytes) "
        f"at {host.disk_path}"
    )
    for store in report.stores:
        growth = (
            f", {store.growth_bytes_per_day:+.0f} bytes/day"
            if store.growth_bytes_per_day is not None
            else ""
        )
        print_table(
            f"{store.name} ({store.backend}): {store.status}",
            ["table", "rows", "bytes", "rows/day"],
            [
                (
                    t.name,
                    t.rows,
                    t.bytes,
                    "-" if t.growth_rows_per_day is None else t.growth_rows_per_day,
                )
                for t in store.tables
                if t.rows or t.growth_rows_per_day
            ],
            caption=f"{store.location}, {store.size_bytes} bytes{growth}, "
            f"{store.response_ms:.1f} ms" + (f", error: {store.error}" if store.error else ""),
        )
        if store.partitions:
            print_table(
                f"{store.name}: time_series partitions",
                ["partition", "bounds", "rows", "bytes"],
                [(p.name, p.bounds, p.rows, p.bytes) for p in store.partitions],
            )
    if report.replication is not None:
        state = report.replication
        console.print(
            f"replica {state['replica']}: last pass "
            + (f"{state['age_seconds']:.0f} s ago" if state["last_pass"] else "never")
        )
    if report.archive is not None:
        archive = report.archive
        console.print(
            f"candle archive {archive['dir']}: {archive['partitions']} partitions, "
            f"{archive['bytes']} bytes, {archive['first_month']} .. {archive['last_month']}"
        )
    if report.agents is not None and report.agents["messages"]:
        queue = report.agents
        counts = ", ".join(f"{n} {state}" for state, n in sorted(queue["messages"].items()))
        console.print(f"agent queue: {counts}; {queue['running_executions']} running executions")
    if report.slow_queries:
        print_table(
            "slow queries",
            ["store", "ms", "statement"],
            [
                (q["store"], f"{q['milliseconds']:.0f}", q["statement"][:80])
                for q in report.slow_queries[:10]
            ],
        )
    check = report.replica_check
    if check is not None and check.get("error") is None:
        console.print(
            f"replica check: {check['tables']} tables, {check['sampled_rows']} rows compared, "
            f"{len(check['drifted'])} drifted, {len(check['pending'])} with pending changes"
        )
    if report.alerts:
        print_table(
            "alerts",
            ["severity", "component", "message"],
            [(a.severity, a.component, a.message) for a in report.alerts],
        )
    console.print(
        ("healthy" if report.ok else "UNHEALTHY")
        + (f"; {written} rows recorded" if written else "")
    )


def health(
    ctx: typer.Context,
    as_json: bool = JsonOption,
    record: bool = typer.Option(
        False, "--record", help="Store the snapshot (system_metrics, system_health) and alerts."
    ),
    min_free_disk: float = typer.Option(10.0, "--min-free-disk", help="Alert below this % free."),
    max_memory: float = typer.Option(95.0, "--max-memory", help="Alert above this % memory used."),
    max_cpu: float | None = typer.Option(None, "--max-cpu", help="Alert above this % CPU (off)."),
    max_store_bytes: int | None = typer.Option(None, "--max-store-bytes", help="Alert above."),
    max_slow_queries: int = typer.Option(50, "--max-slow-queries", help="Alert above, per 24 h."),
    min_quality_score: float = typer.Option(0.8, "--min-quality-score", help="Alert below."),
    max_replication_age: float = typer.Option(
        3600.0, "--max-replication-age", help="Alert when the last replication pass is older (s)."
    ),
    max_replication_lag: float = typer.Option(
        300.0, "--max-replication-lag", help="Alert when a change waits longer for the replica (s)."
    ),
    max_dead_letters: int = typer.Option(
        0, "--max-dead-letters", min=0, help="Alert when the agent queue holds more."
    ),
    replica_check_rows: int = typer.Option(
        1000,
        "--replica-check-rows",
        min=0,
        help="Rows per table the cheap replica check compares (0: no check).",
    ),
) -> None:
    """Health of every store and the host; exit 1 when any alert is a warning or worse."""
    stores = open_stores(ctx)
    limits = health_ops.Thresholds(
        min_free_disk_percent=min_free_disk,
        max_memory_percent=max_memory,
        max_cpu_percent=max_cpu,
        max_store_bytes=max_store_bytes,
        max_slow_queries=max_slow_queries,
        min_quality_score=min_quality_score,
        max_replication_age_seconds=max_replication_age,
        max_replication_lag_seconds=max_replication_lag,
        replica_check_rows=replica_check_rows or None,
        max_dead_letters=max_dead_letters,
    )
    report = health_ops.check(stores, limits)
    written = health_ops.record(stores, report) if record else None
    payload = {**report.as_dict(), "recorded_rows": written}
    emit(as_json, payload, lambda: _render(report, written))
    if not report.ok:
        raise typer.Exit(1)
