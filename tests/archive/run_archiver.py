"""Archive everything older than the cutoff of the tests: a subprocess to kill -9."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptotrading.db.engine import create_store_engine
from cryptotrading.market.archive import archive_time_series

if __name__ == "__main__":
    url, archive_dir, now_ms = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    engine = create_store_engine(url)
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    report = archive_time_series(engine, archive_dir, timedelta(days=30), now=now)
    print(report.rows, flush=True)
