"""Fuzz the configuration (config file, store URLs, global options) and the ops
commands that take free text: ``db export-schema --file``, backup ids and directories,
job names, health thresholds and replication numbers (SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz import strategies as s
from tests.fuzz.harness import SQLITE_ONLY, Fuzzer, fuzz_settings, options, write

pytestmark = [pytest.mark.fuzz, SQLITE_ONLY]

_SETTINGS = ["layout", "data_dir", "sqlite_busy_timeout_ms", "slow_query_ms", "app_url"]


def _toml(name: str, value: str) -> str:
    return f'{name} = "{value}"\n' if not value[:1].isdigit() else f"{name} = {value}\n"


TOML = st.one_of(
    st.builds(_toml, st.sampled_from(_SETTINGS), st.one_of(s.numbers, s.any_text)),
    s.any_text,
)

URLS = st.one_of(
    st.sampled_from(
        [
            "sqlite:///:memory:",
            "sqlite://",
            "postgresql://postgres@[::1/x",
            "postgresql://postgres@127.0.0.1:1/nothing",
            "mysql://x",
            "sqlite:////nonexistent/dir/x.db",
            "sqlite:///\x00.db",
            "://",
            "",
        ]
    ),
    s.any_text,
)


@fuzz_settings()
@given(
    config=s.maybe(s.file_bytes(TOML)),
    env=st.dictionaries(
        st.sampled_from(
            [
                "CRYPTOTRADING_APP_URL",
                "CRYPTOTRADING_MARKET_URL",
                "CRYPTOTRADING_LAYOUT",
                "CRYPTOTRADING_SQLITE_BUSY_TIMEOUT_MS",
                "CRYPTOTRADING_SLOW_QUERY_MS",
            ]
        ),
        st.one_of(URLS, s.numbers),
        max_size=2,
    ),
    data_dir=s.maybe(s.any_text),
    layout=s.maybe(st.one_of(st.sampled_from(["two", "single"]), s.any_text)),
)
@example(config=bytes(range(256)), env={}, data_dir=None, layout=None)
@example(
    config=None, env={"CRYPTOTRADING_APP_URL": "sqlite:///:memory:"}, data_dir=None, layout=None
)
@example(
    config=None,
    env={"CRYPTOTRADING_APP_URL": "postgresql://postgres@[::1/x"},
    data_dir=None,
    layout=None,
)
def test_configuration(
    fuzzer: Fuzzer,
    config: bytes | None,
    env: dict[str, str],
    data_dir: str | None,
    layout: str | None,
) -> None:
    overrides = dict(env)
    if config is not None:
        overrides["CRYPTOTRADING_CONFIG"] = str(write(fuzzer.workdir, "ct.toml", config))
    globals_ = options(data_dir=data_dir, layout=layout)
    fuzzer.run([*globals_, "db", "current", "--json"], env=overrides)


@fuzz_settings(0.5)
@given(
    name=st.one_of(
        st.sampled_from(["schema.sql", "/nonexistent/x.sql", "/dev/full", "/proc/version", "."]),
        s.any_text,
    ),
)
@example(name="/nonexistent/x.sql")
@example(name="schema.sql")
def test_export_schema(fuzzer: Fuzzer, tmp_path: Path, name: str) -> None:
    target = Path(name) if name.startswith("/") else tmp_path / "schema" / name
    (tmp_path / "schema").mkdir(exist_ok=True)
    untouched = [] if name in ("/dev/full", "/proc/version", ".", "") else [target]
    fuzzer.run(["db", "export-schema", "--json", f"--file={target}"], untouched=untouched)


@fuzz_settings()
@given(
    command=st.sampled_from(["verify", "restore", "list"]),
    backup_id=s.any_text,
    directory=s.maybe(st.one_of(st.sampled_from(["/", "/proc", "/nonexistent"]), s.any_text)),
    store=s.maybe(s.any_text),
)
def test_backup_ids(
    fuzzer: Fuzzer, command: str, backup_id: str, directory: str | None, store: str | None
) -> None:
    if command == "list":
        fuzzer.run(["backup", "list", "--json", *options(dir=directory, store=store)])
    else:
        fuzzer.run(["backup", command, "--json", *options(dir=directory), "--", backup_id])


@fuzz_settings()
@given(
    jobs=st.lists(s.any_text, min_size=1, max_size=2),
    health=st.dictionaries(
        st.sampled_from(
            [
                "min_free_disk",
                "max_memory",
                "max_cpu",
                "max_store_bytes",
                "max_slow_queries",
                "min_quality_score",
                "max_replication_age",
                "max_replication_lag",
                "replica_check_rows",
            ]
        ),
        s.numbers,
        max_size=3,
    ),
    replicate=st.dictionaries(
        st.sampled_from(["batch_size"]), st.one_of(s.integers, s.numbers), max_size=1
    ),
)
def test_jobs_thresholds_numbers(
    fuzzer: Fuzzer, jobs: list[str], health: dict[str, str], replicate: dict[str, str]
) -> None:
    fuzzer.run(["ops", "run", "--json", *[f"--job={job}" for job in jobs]])
    fuzzer.run(["health", "--json", *options(**health)])
    fuzzer.run(["replicate", "--json", *options(**replicate)])
