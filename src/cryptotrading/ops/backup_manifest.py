"""Backup manifests: the record of one backup, read strictly, written atomically.

A manifest is untrusted input when read back (anyone who can write the backup
directory can edit it): :func:`parse` checks every field's type and range and
refuses anything else with a :class:`ValidationError` naming the field, before the
signature (:mod:`cryptotrading.ops.backup_signing`) is checked.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptotrading.common.views import AsDict
from cryptotrading.errors import NotFoundError, ValidationError

MANIFEST_FORMAT = 1
KINDS: tuple[str, ...] = ("daily", "weekly")
BACKENDS = ("sqlite", "postgresql", "parquet")
SUFFIXES = {"sqlite": ".db.gz", "postgresql": ".pgdump", "parquet": ".tar"}
#: A manifest file larger than this is not one of ours.
MAX_BYTES = 1 << 20
MAX_INT = 2**63 - 1
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_TABLE = re.compile(r"[A-Za-z0-9_./=%~+-]{1,1000}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Manifest(AsDict):
    """What one backup holds, how to check it, and its signature ("" = unsigned)."""

    id: str
    store: str
    backend: str
    kind: str
    file: str
    sha256: str
    size_bytes: int
    schema_versions: dict[str, str | None]
    row_counts: dict[str, int]
    created_at: str
    seconds: float
    source: str
    format: int = MANIFEST_FORMAT
    signature: str = ""

    def signed_fields(self) -> dict[str, Any]:
        """Everything the signature covers: every field but the signature."""
        fields = self.as_dict()
        del fields["signature"]
        return fields

    @property
    def signed(self) -> bool:
        return bool(self.signature)

    @property
    def total_rows(self) -> int:
        return sum(self.row_counts.values())


def _bad(field: str, why: str) -> ValidationError:
    return ValidationError(
        f"manifest field {field!r} {why}",
        hint="The manifest was edited or damaged; choose another backup "
        "(`cryptotrading backup list`).",
    )


def _text(data: dict[str, Any], field: str, limit: int, pattern: re.Pattern[str] | None) -> str:
    value = data[field]
    if not isinstance(value, str) or len(value) > limit:
        raise _bad(field, f"must be a text of at most {limit} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise _bad(field, f"has an invalid value {value[:80]!r}")
    return value


def _count(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise _bad(field, "must be a whole number from 0 to 2**63-1")
    return value


def _versions(value: Any) -> dict[str, str | None]:
    if not isinstance(value, dict) or len(value) > 16:
        raise _bad("schema_versions", "must be an object of at most 16 lineages")
    for lineage, version in value.items():
        if not _NAME.fullmatch(lineage):
            raise _bad("schema_versions", f"names an invalid lineage {lineage[:80]!r}")
        if version is not None and (not isinstance(version, str) or len(version) > 64):
            raise _bad("schema_versions", f"has an invalid version for {lineage!r}")
    return dict(value)


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or len(value) > 100_000:
        raise _bad("row_counts", "must be an object of at most 100000 tables")
    for table, rows in value.items():
        if not _TABLE.fullmatch(table):
            raise _bad("row_counts", f"names an invalid table {table[:80]!r}")
        _count(f"row_counts.{table}", rows)
    return dict(value)


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": _text(data, "id", 200, _ID),
        "store": _text(data, "store", 63, _NAME),
        "backend": _text(data, "backend", 16, None),
        "kind": _text(data, "kind", 16, None),
        "file": _text(data, "file", 220, _ID),
        "sha256": _text(data, "sha256", 64, _SHA256),
        "size_bytes": _count("size_bytes", data["size_bytes"]),
        "schema_versions": _versions(data["schema_versions"]),
        "row_counts": _counts(data["row_counts"]),
        "created_at": _text(data, "created_at", 64, None),
        "source": _text(data, "source", 4096, None),
        "signature": _text(data, "signature", 200, None) if "signature" in data else "",
    }
    seconds = data["seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise _bad("seconds", "must be a number")
    if not (math.isfinite(seconds) and 0 <= seconds < 1e9):
        raise _bad("seconds", "must be a finite duration")
    fields["seconds"] = float(seconds)
    fields["format"] = data.get("format", MANIFEST_FORMAT)
    return fields


def parse(data: Any, backup_id: str | None = None) -> Manifest:
    """A :class:`Manifest` from decoded JSON, every field checked; *backup_id*: the id
    its file name says it has."""
    if not isinstance(data, dict):
        raise _bad("(top level)", "must be a JSON object")
    known = {*Manifest.__dataclass_fields__}
    extra = sorted(str(key)[:40] for key in data if key not in known)
    if extra:
        raise _bad(extra[0], "is not a manifest field")
    required = known - {"format", "signature"}
    missing = sorted(required - set(data))
    if missing:
        raise _bad(missing[0], "is missing")
    fields = _fields(data)
    if fields["format"] != MANIFEST_FORMAT or isinstance(fields["format"], bool):
        raise _bad("format", f"must be {MANIFEST_FORMAT} (a newer release wrote it?)")
    if fields["backend"] not in BACKENDS:
        raise _bad("backend", f"must be one of {', '.join(BACKENDS)}")
    if fields["kind"] not in KINDS:
        raise _bad("kind", f"must be one of {', '.join(KINDS)}")
    if (fields["backend"] == "parquet") != (fields["store"] == "archive"):
        raise _bad("backend", "parquet goes with the store 'archive' and only with it")
    if fields["file"] != fields["id"] + SUFFIXES[fields["backend"]]:
        raise _bad("file", "must be the id followed by the backend's suffix")
    if backup_id is not None and fields["id"] != backup_id:
        raise _bad("id", f"is {fields['id']!r}, but the file is {backup_id}.json")
    try:
        datetime.fromisoformat(fields["created_at"])
    except ValueError:
        raise _bad("created_at", "is not an ISO 8601 time") from None
    return Manifest(**fields)


def path_of(directory: Path, backup_id: str) -> Path:
    if not _ID.fullmatch(backup_id):
        raise NotFoundError(
            f"no backup {backup_id[:80]!r} in {directory}: not a backup id",
            hint="List the backups with `cryptotrading backup list`.",
        )
    return directory / f"{backup_id}.json"


def read(path: Path) -> Manifest:
    """The manifest in *path*: a :class:`ValidationError` for anything but a valid one."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise NotFoundError(
            f"no backup {path.stem!r} in {path.parent}",
            hint="List the backups with `cryptotrading backup list`.",
        ) from None
    except OSError as exc:
        raise _bad("(file)", f"cannot be read: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise _bad("(file)", f"is larger than {MAX_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise _bad("(file)", f"is not valid JSON: {str(exc)[:120]}") from None
    return parse(data, path.stem)


def load(directory: Path, backup_id: str) -> Manifest:
    return read(path_of(directory, backup_id))


def list_all(directory: Path, store: str | None = None) -> list[Manifest]:
    """Finished backups in *directory* (files that are not valid manifests are
    skipped), newest first."""
    manifests = []
    if directory.is_dir():
        for path in directory.glob("*.json"):
            try:
                manifest = read(path)
            except (ValidationError, NotFoundError):
                continue  # not one of our manifests, or removed meanwhile
            if store is None or manifest.store == store:
                manifests.append(manifest)
    return sorted(manifests, key=lambda m: (m.created_at, m.id), reverse=True)


def write(directory: Path, manifest: Manifest) -> None:
    """Write the manifest atomically (owner-only, fsynced, renamed into place)."""
    final = directory / f"{manifest.id}.json"
    partial = final.with_suffix(".json.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(manifest.as_dict(), handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, final)
