"""Hostile output paths, ages, config files and store URLs (issue 10, findings 4 and
5): a named error with a hint, a non-zero exit, no traceback, and nothing written --
no output file or leftover temporary, tables as they were.

Plus Hypothesis properties of the parsers involved: any text as a URL, an age, an
export file name or an output path, and any bytes as the config file, give a value
or a CryptotradingError, never another exception.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from cryptotrading.cli import app
from cryptotrading.db.engine import backend_of
from cryptotrading.errors import ConfigurationError, ValidationError
from cryptotrading.market import MarketStore
from cryptotrading.market.archive import MAX_AGE, parse_age
from cryptotrading.market.formats import EXPORT_FORMATS, export_format
from cryptotrading.outputs import check_output
from cryptotrading.settings import CONFIG_ENV, Settings, load_settings
from cryptotrading.stores import Stores
from tests.helpers import BINANCE_DIR as BINANCE
from tests.helpers import (
    ROOT,
    SettingsFactory,
    assert_refused,
    load_rows,
    settings_env,
    table_counts,
)

runner = CliRunner()


@pytest.fixture
def settings(make_settings: SettingsFactory, market_data_dir: Path) -> Settings:
    """Three stores holding 5482 real hourly candles of BTC/USDT (330 kB as CSV)."""
    made = make_settings("three", slow_query_ms=1e9)
    rows = load_rows(market_data_dir / BINANCE / "BTC_USDT-1h.json")
    with Stores(made) as stores:
        MarketStore(stores).write_ohlcv(rows, symbol="BTC/USDT", timeframe="1h")
    return made


def cli(settings: Settings | None, *args: str, **env: str) -> Result:
    base = settings_env(settings) if settings is not None else {}
    return runner.invoke(app, list(args), env={**base, "CRYPTOTRADING_SLOW_QUERY_MS": "1e9", **env})


def _partials(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.endswith(".partial")]


EXPORT = ("market", "export")
SERIES = ("-s", "BTC/USDT", "-t", "1h")


def test_export_to_unwritable_targets(settings: Settings, tmp_path: Path) -> None:
    before = table_counts(settings)
    dev_before = sorted(os.listdir("/dev"))
    cases = [
        ("/nonexistent/dir/out.csv", [], "directory /nonexistent/dir does not exist"),
        ("/dev/full", [], "it is a character device, not a regular file"),
        ("/dev/full", ["--format", "csv"], "it is a character device, not a regular file"),
        (str(tmp_path), ["--format", "parquet"], "it is a directory, not a regular file"),
        ("/proc/version", ["--format", "csv"], "cannot create a file in /proc"),
        (str(tmp_path / "out.xml"), [], "cannot tell the export format of 'out.xml'"),
        (str(tmp_path / "noext"), [], "cannot tell the export format of 'noext'"),
        (str(tmp_path / "out.csv"), ["--format", "xml"], "cannot export to 'xml'"),
    ]
    for target, extra, message in cases:
        assert_refused(cli(settings, *EXPORT, target, *SERIES, *extra), message)
    assert not (tmp_path / "out.xml").exists() and not (tmp_path / "noext").exists()
    assert not (tmp_path / "out.csv").exists() and not _partials(tmp_path)
    assert sorted(os.listdir("/dev")) == dev_before
    assert table_counts(settings) == before
    forced = cli(settings, *EXPORT, str(tmp_path / "out.xml"), *SERIES, "--format", "csv")
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "out.xml").read_text().startswith("timestamp,open,high,low,close,volume")


FILE_LIMIT = 100_000  # above SQLite's 32 kB shared-memory file, below the export


def _limit_file_size() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_export_failing_mid_write_leaves_the_old_file(
    settings: Settings, tmp_path: Path, suffix: str
) -> None:
    """A write that fails half-way (here: a 100 kB file-size limit, as a full disk
    would) leaves the previous file whole and no temporary behind."""
    target = tmp_path / f"out.{suffix}"
    target.write_bytes(b"the previous export\n")
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cryptotrading.cli import main; main()",
            *EXPORT,
            str(target),
            *SERIES,
        ],
        env={**os.environ, **settings_env(settings), "CRYPTOTRADING_SLOW_QUERY_MS": "1e9"},
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 5, completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr
    assert completed.stderr.startswith("error: cannot write"), completed.stderr
    assert "nothing was written" in completed.stderr and "\nhint: " in completed.stderr
    assert target.read_bytes() == b"the previous export\n"
    assert not _partials(tmp_path)


@pytest.mark.parametrize("dry_run", [True, False])
def test_archive_age_out_of_range(settings: Settings, tmp_path: Path, dry_run: bool) -> None:
    before = table_counts(settings)
    flags = ["--dry-run"] if dry_run else []
    archive = str(tmp_path / "archive")
    for age, message in [
        ("99999999999d", "is more than 200 years"),
        ("73201d", "is more than 200 years"),
        ("9" * 5000 + "w", "is more than 200 years"),
        ("²d", "invalid age"),
        ("0d", "invalid age"),
    ]:
        args = ("market", "archive", "--older-than", age, "--archive-dir", archive, *flags)
        result = cli(settings, *args)
        assert_refused(result, message)
        assert len(result.stderr) < 400  # the huge value is shortened
    assert table_counts(settings) == before and not Path(archive).exists()


def test_export_schema_targets(settings: Settings, tmp_path: Path) -> None:
    assert_refused(
        cli(settings, "db", "export-schema", "--file", "/nonexistent/x.sql"),
        "directory /nonexistent does not exist",
    )
    assert_refused(cli(settings, "db", "export-schema", "--file", "/dev/full"), "character device")
    assert_refused(cli(settings, "db", "export-schema", "--file", str(tmp_path)), "a directory")
    target = tmp_path / "schema.sql"
    target.write_text("keep me")
    refused = cli(settings, "db", "export-schema", "--file", str(target))
    assert_refused(refused, "already exists")
    assert "--force" in refused.stderr and target.read_text() == "keep me"
    forced = cli(settings, "db", "export-schema", "--file", str(target), "--force")
    assert forced.exit_code == 0, forced.output
    assert "CREATE TABLE" in target.read_text() and not _partials(tmp_path)
    fresh = tmp_path / "new.sql"
    assert cli(settings, "db", "export-schema", "--file", str(fresh)).exit_code == 0
    assert fresh.read_text() == target.read_text()


def test_config_file_binary_or_special(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    data_dir = str(tmp_path / "data")
    cases = [
        (str(binary), "cannot read config file"),
        ("/dev/zero", "is not a regular file"),
        (str(fifo), "is not a regular file"),
        (str(tmp_path), "is not a regular file"),
        (str(tmp_path / "missing.toml"), "does not exist"),
        ("x" * 5000, "cannot be opened"),
    ]
    for config, message in cases:
        result = cli(None, "init", CRYPTOTRADING_CONFIG=config, CRYPTOTRADING_DATA_DIR=data_dir)
        assert_refused(result, message, exit_code=2)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cryptotrading.toml").write_bytes(b"\xff\xfe\x00 binary")
    result = cli(None, "init", CRYPTOTRADING_DATA_DIR=data_dir)
    assert_refused(result, "cannot read config file 'cryptotrading.toml'", exit_code=2)
    assert not Path(data_dir).exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///:memory:", "in-memory SQLite database"),
        ("sqlite://", "in-memory SQLite database"),
        ("sqlite:///file::memory:?cache=shared", "in-memory SQLite database"),
        ("postgresql://postgres@[::1/x", "cannot parse database URL"),
        ("postgresql://postgres:s3cret@[::1/x", "cannot parse database URL 'postgresql://***@"),
        ("postgresql://postgres@localhost:99999/x", "port 99999"),
        ("mysql://u@h/x", "unsupported database backend"),
        ("::::", "cannot parse database URL"),
    ],
)
def test_store_url_refused(tmp_path: Path, url: str, message: str) -> None:
    data_dir = tmp_path / "data"
    for args in (["init"], ["db", "current"], ["market", "list"]):
        result = cli(None, *args, CRYPTOTRADING_APP_URL=url, CRYPTOTRADING_DATA_DIR=str(data_dir))
        assert_refused(result, message, exit_code=2)
        assert "s3cret" not in result.stdout + result.stderr
    assert not data_dir.exists()


# ------------------------------------------------------------ property tests

PROPERTY = hypothesis_settings(
    max_examples=int(os.environ.get("CRYPTOTRADING_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
url_text = st.one_of(
    st.text(max_size=60),
    st.builds(
        "{}://{}{}".format,
        st.sampled_from(
            ["sqlite", "postgresql", "postgres", "postgresql+psycopg", "sqlite+pysqlite"]
        ),
        st.text(max_size=30),
        st.text(max_size=20),
    ),
)


@PROPERTY
@given(url=url_text)
def test_any_url_is_a_backend_or_a_configuration_error(url: str) -> None:
    try:
        backend = backend_of(url)
    except ConfigurationError as exc:
        assert exc.hint
    else:
        assert backend in ("sqlite", "postgresql")


@PROPERTY
@given(
    age=st.one_of(
        st.text(max_size=20),
        st.builds(
            "{}{}".format,
            st.integers(min_value=-(10**30), max_value=10**30),
            st.sampled_from("mhdwMHDWy"),
        ),
    )
)
def test_any_age_is_bounded_or_refused(age: str) -> None:
    try:
        parsed = parse_age(age)
    except ValidationError as exc:
        assert exc.hint
    else:
        assert timedelta(0) < parsed <= MAX_AGE


@PROPERTY
@given(
    name=st.text(max_size=30),
    fmt=st.one_of(st.none(), st.sampled_from(EXPORT_FORMATS), st.text(max_size=8)),
)
def test_any_export_name_has_a_format_or_is_refused(name: str, fmt: str | None) -> None:
    try:
        chosen = export_format(Path(name or "x"), fmt)
    except ValidationError as exc:
        assert exc.hint
    else:
        assert chosen in EXPORT_FORMATS


@PROPERTY
@given(name=st.text(min_size=1, max_size=300))
def test_any_output_path_is_checked_without_an_exception(tmp_path: Path, name: str) -> None:
    try:
        target = check_output(tmp_path / name, overwrite=False)
    except ValidationError as exc:
        assert exc.hint
    else:
        assert target.parent.is_dir() and not target.exists()


@PROPERTY
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_any_config_file_is_settings_or_a_configuration_error(
    tmp_path: Path, content: bytes
) -> None:
    config = tmp_path / "any.toml"
    config.write_bytes(content)
    previous = os.environ.get(CONFIG_ENV)
    os.environ[CONFIG_ENV] = str(config)
    try:
        load_settings(data_dir=tmp_path)
    except ConfigurationError as exc:
        assert exc.hint
    finally:
        if previous is None:
            del os.environ[CONFIG_ENV]
        else:
            os.environ[CONFIG_ENV] = previous
