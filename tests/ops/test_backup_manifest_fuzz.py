"""Hostile manifests: any edited field, garbage bytes, deep nesting or huge numbers is
refused with a named error (never a traceback) and the live stores stay as they were."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cryptotrading.errors import CryptotradingError
from cryptotrading.ops import backup
from cryptotrading.stores import Stores
from tests.helpers import count_rows, invoke
from tests.ops.helpers import insert_candles, insert_metrics

FIELDS = [*backup.Manifest.__dataclass_fields__]

hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["app", "market", "main", "replica", "archive", "../x", "daily", "2.0.0"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.none()), max_size=3),
)


@st.composite
def hostile_manifest(draw: st.DrawFn, original: dict[str, Any]) -> bytes:
    """The original manifest with one hostile change, or bytes that are not one."""
    choice = draw(st.sampled_from(["edit", "drop", "add", "garbage", "nested", "huge"]))
    data = dict(original)
    if choice == "edit":
        field = draw(st.sampled_from(FIELDS))
        data[field] = draw(hostile_values)
        assume(data != original)
    elif choice == "drop":
        del data[draw(st.sampled_from(FIELDS))]
    elif choice == "add":
        data[draw(st.text(min_size=1, max_size=12))] = draw(hostile_values)
        assume(data != original)
    elif choice == "garbage":
        return draw(st.binary(max_size=300))
    elif choice == "nested":
        depth = draw(st.integers(min_value=1_000, max_value=200_000))
        return ("[" * depth + "]" * depth).encode()
    else:
        field = draw(st.sampled_from(["size_bytes", "seconds", "format", "row_counts"]))
        digits = draw(st.integers(min_value=20, max_value=6_000))
        text = json.dumps(data)
        number = "9" * digits + draw(st.sampled_from(["", ".5", "e999"]))
        value = f'{{"time_series": {number}}}' if field == "row_counts" else number
        return text.replace(f'"{field}": {json.dumps(data[field])}', f'"{field}": {value}').encode()
    try:
        return json.dumps(data).encode()
    except ValueError:  # NaN is fine for json.dumps; only oversized ints land here
        return b"{}"


def _same_manifest(content: bytes, original: dict[str, Any]) -> bool:
    try:
        return bool(json.loads(content) == original)
    except (ValueError, RecursionError):
        return False


def _fingerprint(stores: Stores) -> tuple[int, int]:
    return count_rows(stores.engine("market"), "time_series"), count_rows(
        stores.engine("app"), "system_metrics"
    )


@pytest.mark.slow
def test_hostile_manifests_are_refused_with_named_errors(stores: Stores, backup_dir: Path) -> None:
    insert_candles(stores.engine("market"), 0, 50)
    insert_metrics(stores.engine("app"), 5)
    made = backup.create_backup(stores, "market", "daily", backup_dir)
    path = backup_dir / f"{made.id}.json"
    original = json.loads(path.read_text())
    before = _fingerprint(stores)
    env_settings = stores.settings

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=True,
    )
    @given(content=hostile_manifest(original))
    def check(content: bytes) -> None:
        assume(not _same_manifest(content, original))  # an unchanged manifest verifies
        path.write_bytes(content)
        try:
            result = backup.verify_backup(stores, made.id, backup_dir)
            assert not result.ok, content[:200]
        except CryptotradingError as exc:
            assert exc.hint
        with pytest.raises(CryptotradingError):
            backup.restore_backup(stores, made.id, backup_dir)
        listed = invoke(env_settings, "backup", "list", "--json", "--dir", str(backup_dir))
        assert listed.exit_code == 0 and "Traceback" not in listed.stderr
        cli = invoke(env_settings, "backup", "restore", made.id, "--dir", str(backup_dir))
        assert cli.exit_code in (1, 2, 3, 4, 5, 6), cli.stderr
        assert "error:" in cli.stderr and "Traceback" not in cli.stderr + cli.stdout
        assert _fingerprint(stores) == before

    check()
    if stores.market.path is not None:
        assert not list(stores.market.path.parent.glob("*.pre-restore-*"))
