"""Backups of the candle archive: the Parquet partitions written by ``market archive``.

Candles moved to the archive are no longer in the market store, so a backup of the
store alone would lose them. The archive is files, not a database: its backup is one
tar (uncompressed -- Parquet is already zstd) of every partition's ``candles.parquet``
and ``_manifest.json``, made only from an archive whose partitions all verify. The tar
is then unpacked into a scratch directory and verified again, which also catches a
partition rewritten by an archive run while it was being packed. ``verify`` and
``restore`` unpack into a scratch / staged directory the same way.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

from cryptotrading.errors import ValidationError
from cryptotrading.market.archive import FILE_NAME, MANIFEST_NAME, verify_archive
from cryptotrading.stores import Stores

#: The name under which the archive appears in ``backup create|list --store``.
ARCHIVE_STORE = "archive"
BACKEND = "parquet"
SUFFIX = ".tar"


def archive_dir(stores: Stores) -> Path:
    """The default candle archive of *stores* (what the market store reads)."""
    return stores.settings.data_dir / "archive"


def has_partitions(source: Path) -> bool:
    return source.is_dir() and any(source.glob(f"exchange=*/*/*/month=*/{FILE_NAME}"))


def pack(source: Path, target: Path) -> dict[str, int]:
    """Write the verified partitions of *source* into the tar *target*; returns the
    rows per partition (relative path). Refuses an archive that does not verify."""
    verified = verify_archive(source)
    bad = [f"{entry['partition']}: {entry['problem']}" for entry in verified if not entry["ok"]]
    if bad:
        raise ValidationError(
            f"the candle archive fails verification, no backup was made: {'; '.join(bad[:3])}",
            hint="Run `cryptotrading market verify-archive` and repair it first "
            "(or restore it from an earlier backup).",
        )
    with tarfile.open(target, "w") as tar:
        for entry in verified:
            partition = Path(entry["partition"])
            relative = partition.relative_to(source)
            for name in (FILE_NAME, MANIFEST_NAME):
                tar.add(partition / name, arcname=str(relative / name), recursive=False)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".verify-") as scratch:
        counts, problems = unpack(target, Path(scratch) / "archive")
    expected = {
        str(Path(entry["partition"]).relative_to(source)): int(entry["rows"]) for entry in verified
    }
    if problems or counts != expected:
        raise ValidationError(
            "the candle archive changed while it was backed up: "
            + ("; ".join(problems[:3]) or "partitions differ from what was verified"),
            hint="Run the backup again (an archive run was probably writing).",
        )
    return counts


def unpack(tar_path: Path, into: Path) -> tuple[dict[str, int], list[str]]:
    """Extract *tar_path* into the new directory *into* and verify every partition;
    returns (rows per partition, problems). Never raises for bad content."""
    try:
        with tarfile.open(tar_path) as tar:
            tar.extractall(into, filter="data")  # no absolute paths, links or devices
    except (tarfile.TarError, OSError, ValueError) as exc:
        return {}, [f"cannot unpack {tar_path.name}: {exc}"]
    verified = verify_archive(into)
    counts = {str(Path(e["partition"]).relative_to(into)): int(e["rows"] or 0) for e in verified}
    problems = [
        f"{Path(e['partition']).relative_to(into)}: {e['problem']}" for e in verified if not e["ok"]
    ]
    return counts, problems
