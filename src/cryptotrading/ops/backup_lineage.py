"""Is a restored copy a database of the store it is meant for?

A manifest says which store a backup belongs to; the content must agree before
anything is swapped in. A database of a store's lineages (``app``, ``market``;
:data:`cryptotrading.stores.LAYOUT_FILES`) has, for each of them, its Alembic
version table at a revision this release knows and every table that revision
creates (``table.info["since"]``); it has neither the version table nor any table
of a lineage the store does not carry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from cryptotrading import migrations
from cryptotrading.migrations.environment import version_table
from cryptotrading.models import LINEAGES, lineage_tables
from cryptotrading.stores import LAYOUT_FILES


@dataclass(frozen=True)
class Contents:
    """What a restored copy holds: the version of every lineage (None: no version
    table), the row count of the tables asked for, and every table name."""

    versions: dict[str, str | None]
    counts: dict[str, int]
    tables: frozenset[str]


def versions_and_counts(
    first_value: Callable[[str], Any],
    existing: set[str],
    lineages: Iterable[str],
    tables: Iterable[str],
) -> tuple[dict[str, str | None], dict[str, int]]:
    """Schema version per lineage and row count per table (of those in *existing*) of
    one database, asked through *first_value* (an SQL text -> its first value or None)."""
    versions: dict[str, str | None] = {}
    for lineage in lineages:
        name = version_table(lineage)
        value = first_value(f'SELECT version_num FROM "{name}"') if name in existing else None
        versions[lineage] = None if value is None else str(value)
    counts = {
        table: int(first_value(f'SELECT count(*) FROM "{table}"') or 0)
        for table in sorted(tables)
        if table in existing
    }
    return versions, counts


def store_lineages(store: str) -> tuple[str, ...] | None:
    """The lineages a store of this name carries in every layout (None: unknown)."""
    for stores in LAYOUT_FILES.values():
        if store in stores:
            return stores[store][1]
    return None


@cache
def known_revisions(lineage: str) -> tuple[str, ...]:
    """The revisions of *lineage*, oldest first (read once per process)."""
    return tuple(migrations.known_revisions(lineage))


def expected_tables(lineage: str, revision: str) -> set[str]:
    """The tables of *lineage* that exist at *revision* (created by it or before)."""
    order = known_revisions(lineage)
    rank = order.index(revision)
    return {
        table.name
        for table in lineage_tables(lineage)
        if table.info.get("since") not in order or order.index(table.info["since"]) <= rank
    }


def problems(contents: Contents, lineages: tuple[str, ...]) -> list[str]:
    """Why *contents* is not a database of exactly *lineages* (empty: it is)."""
    found: list[str] = []
    for lineage in lineages:
        version = contents.versions.get(lineage)
        if version is None:
            found.append(f"no schema version of lineage {lineage!r} (alembic_version_{lineage})")
            continue
        if version not in known_revisions(lineage):
            found.append(f"lineage {lineage!r} is at version {version!r}, unknown to this release")
            continue
        missing = sorted(expected_tables(lineage, version) - contents.tables)
        if missing:
            found.append(
                f"{len(missing)} table(s) of lineage {lineage!r} at {version} missing: "
                + ", ".join(missing[:5])
            )
    for other in LINEAGES:
        if other in lineages:
            continue
        if contents.versions.get(other) is not None:
            found.append(f"it is a database of lineage {other!r} (alembic_version_{other})")
        foreign = sorted({table.name for table in lineage_tables(other)} & contents.tables)
        if foreign:
            found.append(f"it holds tables of lineage {other!r}: {', '.join(foreign[:5])}")
    return found
