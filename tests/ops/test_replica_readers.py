"""Registered replicas: listed, forgotten, and a forgotten one no longer holds the log."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptotrading.errors import CryptotradingError
from cryptotrading.ops import backup, changelog_archive, replica_readers, replication
from cryptotrading.stores import Stores
from tests.helpers import SettingsFactory, count_rows, invoke, make_user


def test_a_forgotten_replica_no_longer_holds_back_the_log(
    make_settings: SettingsFactory,
) -> None:
    settings_ = make_settings()
    with Stores(settings_) as stores:
        make_user(stores.engine("app"), "first")
        replication.replicate_once(stores)
        found = replica_readers.readers(stores)
        assert {r.lineage for r in found} == {"app", "market"}
        name = found[0].replica
        replica_readers_before = len(found)
        # A later change nobody applied: the registered replica holds the log back.
        directory = backup.default_directory(stores)
        changelog_archive.archive_log(stores, directory)
        make_user(stores.engine("app"), "second")
        changelog_archive.archive_log(stores, directory)
        changelog_archive.trim_logs(stores, directory)
        assert count_rows(stores.engine("app"), "change_log") >= 1
    listed = invoke(settings_, "replicate", "readers", "--json")
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == replica_readers_before
    forgot = invoke(settings_, "replicate", "forget", name, "--json")
    assert forgot.exit_code == 0, forgot.stderr
    assert json.loads(forgot.stdout) == {"replica": name, "removed": 2}
    with Stores(settings_) as stores:
        assert replica_readers.readers(stores) == []
        changelog_archive.trim_logs(stores, backup.default_directory(stores))
        if stores.app.backend == "sqlite":  # archived, and no replica reads it any more
            assert count_rows(stores.engine("app"), "change_log") == 0
    again = invoke(settings_, "replicate", "forget", name)
    assert again.exit_code != 0 and "Traceback" not in again.stderr
    assert "no replica" in again.stderr and "hint:" in again.stderr


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.one_of(st.text(max_size=600), st.sampled_from(["", " ", "\x00", "x" * 513])))
def test_any_name_is_forgotten_or_refused_by_name_and_writes_nothing(
    stores: Stores, name: str
) -> None:
    make_user(stores.engine("app"), "keep") if not count_rows(
        stores.engine("app"), "users"
    ) else None
    replication.replicate_once(stores)
    before = replica_readers.readers(stores)
    registered = {r.replica for r in before}
    try:
        replica_readers.forget(stores, name)
    except CryptotradingError as exc:  # a named error with a hint, never a crash
        assert exc.hint
        assert name not in registered
        assert [r.replica for r in replica_readers.readers(stores)] == [r.replica for r in before]
    else:
        assert name in registered
