"""Every table, key field, index and relationship of the spec exists, in every layout,
on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from cryptotrading.models import CATEGORIES, EXTENSIONS, metadata
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory
from tests.schema.spec import SPEC_INDEXES, SPEC_RELATIONSHIPS, expected_columns, spec_tables


def test_spec_lists_45_tables_in_12_categories(spec_file: Path) -> None:
    tables = spec_tables(spec_file)
    assert len(tables) == 45
    spec_categories = [c for c in CATEGORIES if c != "Schema Version"]
    assert len(spec_categories) == 12
    modelled = {table for names in CATEGORIES.values() for table in names}
    assert set(tables) <= modelled
    assert "schema_versions" in metadata.tables
    # the spec's 46 plus the documented extensions, each from a version after 2.0.0
    assert set(metadata.tables) - set(EXTENSIONS) == set(modelled)
    assert len(metadata.tables) == 46 + len(EXTENSIONS)
    for name, extension in EXTENSIONS.items():
        assert metadata.tables[name].info["since"] == extension.since > "2.0.0"


def _columns_by_table(stores: Stores, *, replica: bool) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for store in stores:
        if store.is_replica != replica:
            continue
        inspector = inspect(stores.engine(store))
        for table in inspector.get_table_names():
            found[table] = {column["name"] for column in inspector.get_columns(table)}
    return found


@pytest.mark.parametrize("layout", ["three", "two", "single"])
def test_every_spec_table_and_key_field_exists(
    make_settings: SettingsFactory, spec_file: Path, layout: str
) -> None:
    with Stores(make_settings(layout)) as stores:
        copies = [_columns_by_table(stores, replica=False)]
        if any(store.is_replica for store in stores):
            copies.append(_columns_by_table(stores, replica=True))
        for found in copies:
            assert set(metadata.tables) <= set(found)
            for table, fields in spec_tables(spec_file).items():
                for field in fields:
                    for column in expected_columns(table, field):
                        assert column in found[table], f"{table}.{column} missing"


def _leading_columns(stores: Stores, table: str) -> list[tuple[str, ...]]:
    engine = stores.engine(stores.market if table == "time_series" else stores.app)
    inspector = inspect(engine)
    keys = [tuple(index["column_names"]) for index in inspector.get_indexes(table)]
    keys += [tuple(uq["column_names"]) for uq in inspector.get_unique_constraints(table)]
    keys.append(tuple(inspector.get_pk_constraint(table)["constrained_columns"]))
    return keys


@pytest.mark.parametrize(("table", "columns"), SPEC_INDEXES)
def test_every_spec_index_exists(stores: Stores, table: str, columns: tuple[str, ...]) -> None:
    keys = _leading_columns(stores, table)
    assert any(key[: len(columns)] == columns for key in keys), f"{table}{columns}: {keys}"


def test_index_names_follow_one_convention(stores: Stores) -> None:
    inspector = inspect(stores.engine(stores.app))
    for table in inspector.get_table_names():
        for index in inspector.get_indexes(table):
            assert index["name"].startswith((f"ix_{table}_", f"uq_{table}_")), index["name"]
        for fk in inspector.get_foreign_keys(table):
            assert fk["name"] is None or fk["name"].startswith(f"fk_{table}_"), fk["name"]


@pytest.mark.parametrize(("child", "column", "parent"), SPEC_RELATIONSHIPS)
def test_every_spec_relationship_is_a_foreign_key(
    stores: Stores, child: str, column: str, parent: str
) -> None:
    inspector = inspect(stores.engine(stores.app))
    fks = inspector.get_foreign_keys(child)
    assert any(
        fk["constrained_columns"] == [column] and fk["referred_table"] == parent for fk in fks
    ), fks
