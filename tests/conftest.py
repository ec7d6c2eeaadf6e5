"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``CRYPTOTRADING_TEST_PG_URL`` (default: the local server,
database ``test``). Each test gets fresh databases, copied from migrated templates.
When no server answers, the PostgreSQL half is skipped -- unless ``--require-postgres``
is given or ``CI`` / ``CRYPTOTRADING_REQUIRE_POSTGRES`` is set, where it is an error.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from cryptotrading import migrations
from cryptotrading.db.engine import create_store_engine
from cryptotrading.models import lineage_tables
from cryptotrading.settings import Settings
from cryptotrading.stores import LAYOUT_FILES, Stores
from tests.helpers import ROOT, SHARED_DIR, SettingsFactory, make_user, settings_env

__all__ = ["ROOT", "SHARED_DIR", "SettingsFactory", "settings_env"]  # for older imports

PG_URL = os.environ.get(
    "CRYPTOTRADING_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-postgres",
        action="store_true",
        help="Fail (instead of skip) when PostgreSQL is unreachable.",
    )


def _postgres_required(config: pytest.Config) -> bool:
    return bool(
        config.getoption("--require-postgres")
        or os.environ.get("CI", "").lower() in ("1", "true", "yes")
        or os.environ.get("CRYPTOTRADING_REQUIRE_POSTGRES")
    )


class PostgresServer:
    """Creates and drops throw-away databases on the test server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)
        self.admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self.prefix = f"ct_{os.environ.get('PYTEST_XDIST_WORKER', 'gw')}_{os.getpid()}"
        self.templates: dict[tuple[str, ...], str] = {}
        self.created: list[str] = []
        self.pool: dict[tuple[str, ...], list[str]] = {}
        self.fingerprints: dict[tuple[str, ...], list[tuple[str, ...]]] = {}

    def url(self, database: str) -> str:
        return self.admin_url.set(database=database).render_as_string(hide_password=False)

    def create(self, lineages: tuple[str, ...] = (), *, migrated: bool = True) -> str:
        """A fresh database, migrated to head for *lineages* when *migrated*."""
        name = f"{self.prefix}_{uuid.uuid4().hex[:10]}"
        template = self._template(lineages) if migrated and lineages else "template0"
        with self.admin.connect() as connection:
            connection.execute(
                text(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
            )
        self.created.append(name)
        return self.url(name)

    def acquire(self, lineages: tuple[str, ...]) -> str:
        """A database at head for *lineages* with empty tables (reused when possible)."""
        free = self.pool.setdefault(lineages, [])
        return free.pop() if free else self.create(lineages)

    def release(self, url: str, lineages: tuple[str, ...]) -> None:
        """Empty a database taken with :meth:`acquire` for the next test, or drop it
        when the test moved its schema away from head."""
        engine = create_store_engine(url)
        try:
            # Reuse only a database whose schema is exactly the template's: a test may
            # have dropped an index, added a partition or moved the version.
            reusable = _fingerprint(engine) == self.fingerprints[lineages]
            if reusable:
                tables = [t for lin in lineages for t in lineage_tables(lin)]
                with engine.begin() as connection:
                    for table in reversed(tables):
                        connection.execute(table.delete())
        except Exception:
            reusable = False
        finally:
            engine.dispose()
        if reusable:
            self.pool.setdefault(lineages, []).append(url)
        else:
            self.drop(url)

    def _template(self, lineages: tuple[str, ...]) -> str:
        if lineages not in self.templates:
            name = f"{self.prefix}_tpl_{'_'.join(lineages)}"
            with self.admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
            engine = create_store_engine(self.url(name))
            for lineage in lineages:
                migrations.upgrade(engine, lineage)
            self.fingerprints[lineages] = _fingerprint(engine)
            engine.dispose()
            self.created.append(name)
            self.templates[lineages] = name
        return self.templates[lineages]

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        for name in list(reversed(self.created)):
            with self.admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


_FINGERPRINT_SQL = """
SELECT 'rel', c.relname, c.relkind::text FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
UNION ALL
SELECT 'con', conname, pg_get_constraintdef(oid) FROM pg_constraint
  WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'col', table_name || '.' || column_name, data_type FROM information_schema.columns
  WHERE table_schema = 'public'
UNION ALL
SELECT 'ver', table_name, '' FROM information_schema.tables
  WHERE table_schema = 'public' AND table_name LIKE 'alembic_version_%%'
"""


def _fingerprint(engine: Engine) -> list[tuple[str, ...]]:
    """Every relation, constraint and column of the public schema, and the versions."""
    with engine.connect() as connection:
        rows = [tuple(str(v) for v in row) for row in connection.exec_driver_sql(_FINGERPRINT_SQL)]
        for lineage in ("app", "market"):
            table = f"alembic_version_{lineage}"
            if ("ver", table, "") in rows:
                version = connection.exec_driver_sql(f"SELECT version_num FROM {table}").scalar()
                rows.append(("version", table, str(version)))
    return sorted(rows)


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """The PostgreSQL test server (skipped, or an error under CI, when unreachable)."""
    server = PostgresServer(PG_URL)
    try:
        with server.admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means: no usable server
        server.admin.dispose()
        message = f"PostgreSQL unreachable at {make_url(PG_URL)!r}: {exc}"
        if _postgres_required(request.config):
            pytest.fail(message + " (required: --require-postgres / CI)", pytrace=False)
        pytest.skip(message)
    yield server
    server.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``"sqlite"`` or ``"postgresql"``: parametrizes every database test."""
    if request.param == "postgresql":
        request.getfixturevalue("pg_server")
    return str(request.param)


@pytest.fixture
def make_settings(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[SettingsFactory]:
    """Build Settings for a layout on the current backend, with fresh databases.

    ``make_settings(layout="three", migrated=True)``: on SQLite the files live in a
    temporary data dir (created by ``init`` when *migrated*); on PostgreSQL every
    store gets its own new database.
    """
    urls: list[tuple[str, tuple[str, ...] | None]] = []
    server: PostgresServer | None = (
        request.getfixturevalue("pg_server") if backend == "postgresql" else None
    )

    def factory(layout: str = "three", *, migrated: bool = True, **extra: object) -> Settings:
        data_dir = tmp_path / f"data-{layout}-{len(urls)}"
        overrides: dict[str, object] = {"data_dir": data_dir, "layout": layout, **extra}
        if server is not None:
            names = {"app": "app_url", "market": "market_url", "replica": "replica_url"}
            for store, (_file, lineages) in LAYOUT_FILES[layout].items():
                if migrated:
                    url = server.acquire(lineages)
                    urls.append((url, lineages))
                else:
                    url = server.create(lineages, migrated=False)
                    urls.append((url, None))
                overrides[names.get(store, "app_url")] = url
        settings = Settings(**overrides)  # type: ignore[arg-type]
        if migrated and server is None:
            shutil.copytree(sqlite_templates(layout), data_dir)
        return settings

    yield factory
    if server is not None:
        for url, lineages in urls:
            if lineages is None:
                server.drop(url)
            else:
                server.release(url, lineages)


_SQLITE_TEMPLATES: dict[str, Path] = {}


def sqlite_templates(layout: str) -> Path:
    """A data dir initialised at head for *layout*, made once per test session."""
    if layout not in _SQLITE_TEMPLATES:
        from cryptotrading.ops.lifecycle import initialize

        data_dir = Path(tempfile.mkdtemp(prefix=f"ct-template-{layout}-")) / "data"
        with Stores(Settings(data_dir=data_dir, layout=layout)) as stores:
            initialize(stores)
        _SQLITE_TEMPLATES[layout] = data_dir
    return _SQLITE_TEMPLATES[layout]


@pytest.fixture
def stores(make_settings: SettingsFactory) -> Iterator[Stores]:
    """The three-store layout at head on the current backend."""
    with Stores(make_settings("three")) as opened:
        yield opened


@pytest.fixture
def app_engine(stores: Stores) -> Engine:
    """The engine of the application store of :func:`stores`."""
    return stores.engine(stores.app)


@pytest.fixture
def market_engine(stores: Stores) -> Engine:
    """The engine of the market-data store of :func:`stores`."""
    return stores.engine(stores.market)


@pytest.fixture
def user_id(app_engine: Engine) -> int:
    """The id of user ``alice`` in :func:`app_engine`."""
    return make_user(app_engine)


@pytest.fixture(scope="session")
def market_data_dir() -> Path:
    """The real exchange data in ``../shared/data/market`` (see its SOURCES.md)."""
    path = SHARED_DIR / "data" / "market"
    if not path.is_dir():
        pytest.fail(f"real market data not found at {path}; set CRYPTOTRADING_SHARED_DIR")
    return path


@pytest.fixture(scope="session")
def spec_file() -> Path:
    """The spec as committed with the repository (``docs/spec``; a test checks that it
    still equals ``../shared/spec`` when that exists)."""
    path = ROOT / "docs" / "spec" / "DATABASE_SCHEMA.md"
    if not path.is_file():
        pytest.fail(f"spec not found at {path}")
    return path
