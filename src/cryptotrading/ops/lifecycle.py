"""Create, upgrade, downgrade and inspect the schema version of every store."""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptotrading import migrations
from cryptotrading.common.views import AsDict
from cryptotrading.ops.backup_signing import ensure_key
from cryptotrading.stores import Store, Stores


@dataclass(frozen=True)
class StoreStep(AsDict):
    """One lineage of one store moved from *before* to *after*."""

    store: str
    lineage: str
    before: str | None
    after: str | None


def _secure(store: Store) -> None:
    """Database files are readable by their owner only (they hold credentials)."""
    if store.path is None:
        return
    for suffix in ("", "-wal", "-shm"):
        candidate = store.path.with_name(store.path.name + suffix)
        if candidate.exists():
            os.chmod(candidate, 0o600)


def initialize(stores: Stores) -> list[StoreStep]:
    """Create every store of the layout that is missing and upgrade all to head, and
    the key that signs backup manifests (:mod:`cryptotrading.ops.backup_signing`)."""
    steps = migrate(stores, "head", create=True)
    ensure_key(stores.settings)
    return steps


def migrate(
    stores: Stores, revision: str = "head", *, create: bool = False, only: str | None = None
) -> list[StoreStep]:
    """Upgrade every store (or only the store named *only*) to *revision*."""
    steps = []
    for store in _selected(stores, only):
        engine = stores.engine(store, create=create)
        for lineage in store.lineages:
            step = migrations.upgrade(engine, lineage, revision)
            steps.append(StoreStep(store.name, lineage, step.before, step.after))
        _secure(store)
    return steps


def rollback(stores: Stores, revision: str, *, only: str | None = None) -> list[StoreStep]:
    """Downgrade every store (or only *only*) to *revision*."""
    steps = []
    for store in _selected(stores, only):
        engine = stores.engine(store)
        for lineage in reversed(store.lineages):
            step = migrations.downgrade(engine, lineage, revision)
            steps.append(StoreStep(store.name, lineage, step.before, step.after))
    return steps


def versions(stores: Stores) -> list[StoreStep]:
    """The current version of every lineage of every store (before == after)."""
    result = []
    for store in stores:
        engine = stores.engine(store)
        for lineage in store.lineages:
            revision = migrations.current(engine, lineage)
            result.append(StoreStep(store.name, lineage, revision, revision))
    return result


def _selected(stores: Stores, only: str | None) -> list[Store]:
    return [stores.get(only)] if only else list(stores)
