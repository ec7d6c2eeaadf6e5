"""``db info``: stores, their location, schema version, tables and row counts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import inspect

from cryptotrading import migrations
from cryptotrading.db.engine import READ_ONLY
from cryptotrading.db.session import translate_errors
from cryptotrading.migrations.environment import version_table
from cryptotrading.ops.maintenance import store_size
from cryptotrading.stores import Store, Stores


@dataclass
class StoreInfo:
    store: str
    backend: str
    location: str
    size_bytes: int | None
    versions: dict[str, str | None]
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def table_count(self) -> int:
        return len(self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "table_count": self.table_count}


def info(stores: Stores) -> list[StoreInfo]:
    return [store_info(stores, store) for store in stores]


def store_info(stores: Stores, store: Store) -> StoreInfo:
    engine = stores.engine(store)
    versions = {lineage: migrations.current(engine, lineage) for lineage in store.lineages}
    hidden = {version_table(lineage) for lineage in store.lineages}
    with translate_errors(store.name), engine.connect() as connection:
        connection = connection.execution_options(**{READ_ONLY: True})
        names = [
            name
            for name in inspect(connection).get_table_names()
            if name not in hidden and not name.startswith("alembic_version_")
        ]
        partitions = set()
        if engine.dialect.name == "postgresql":
            partitions = {
                row[0]
                for row in connection.exec_driver_sql(
                    "SELECT c.relname FROM pg_class c WHERE c.relispartition"
                )
            }
        counts = {
            name: int(connection.exec_driver_sql(f'SELECT count(*) FROM "{name}"').scalar() or 0)
            for name in sorted(names)
            if name not in partitions
        }
    location = str(store.path) if store.path is not None else store.display_url
    return StoreInfo(
        store.name, store.backend, location, store_size(engine, store), versions, counts
    )
