"""Stores and layouts: which database holds which tables.

A *store* is one database (a SQLite file or a PostgreSQL database) carrying one or
more migration *lineages*: ``app`` (every application table) and ``market``
(the high-frequency ``time_series``). The layout maps stores to files:

=========  ==========================================================
layout     stores (SQLite file names under the data dir)
=========  ==========================================================
three      app ``cryptotrading.db``, market ``real_market_data.db``,
           replica ``rex.db`` (app + market, the parallel copy)
two        app ``app.db``, market ``market.db``
single     main ``main.db`` (app + market)
=========  ==========================================================

Any store may be a PostgreSQL URL instead (``CRYPTOTRADING_APP_URL``,
``CRYPTOTRADING_MARKET_URL``, ``CRYPTOTRADING_REPLICA_URL``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from cryptotrading.db.engine import backend_of, create_store_engine, mask_url, sqlite_path
from cryptotrading.db.timing import watch_engine
from cryptotrading.errors import ConfigurationError, DataDirError, NotFoundError
from cryptotrading.models import APP_LINEAGE, MARKET_LINEAGE
from cryptotrading.settings import Settings

LAYOUT_FILES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "three": {
        "app": ("cryptotrading.db", (APP_LINEAGE,)),
        "market": ("real_market_data.db", (MARKET_LINEAGE,)),
        "replica": ("rex.db", (APP_LINEAGE, MARKET_LINEAGE)),
    },
    "two": {
        "app": ("app.db", (APP_LINEAGE,)),
        "market": ("market.db", (MARKET_LINEAGE,)),
    },
    "single": {
        "main": ("main.db", (APP_LINEAGE, MARKET_LINEAGE)),
    },
}

#: Synchronous mode per store on SQLite: durable commits for application data,
#: checkpoint-time fsync for the (re-downloadable) market data.
_SYNCHRONOUS = {"market": "NORMAL"}


@dataclass(frozen=True)
class Store:
    """One database and the lineages (sets of tables) it carries."""

    name: str
    url: str
    lineages: tuple[str, ...]

    @property
    def backend(self) -> str:
        return backend_of(self.url)

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None on PostgreSQL."""
        return sqlite_path(self.url)

    @property
    def display_url(self) -> str:
        """The URL with its password hidden."""
        return mask_url(self.url)

    @property
    def identity(self) -> str:
        """Names the database whatever the working directory: the absolute SQLite path,
        or the URL with its password hidden."""
        path = self.path
        return f"sqlite:///{path.resolve()}" if path is not None else self.display_url

    @property
    def is_replica(self) -> bool:
        return self.name == "replica"


def resolve_stores(settings: Settings) -> tuple[Store, ...]:
    """The stores of the configured layout, URLs overriding the default files."""
    overrides = {
        "app": settings.app_url,
        "market": settings.market_url,
        "replica": settings.replica_url,
    }
    if settings.layout == "single":
        if settings.market_url and settings.market_url != settings.app_url:
            raise ConfigurationError(
                "layout 'single' keeps market data in the main store; "
                "CRYPTOTRADING_MARKET_URL cannot name another database",
                hint="Unset CRYPTOTRADING_MARKET_URL, or use layout 'two' or 'three'.",
            )
        overrides["main"] = settings.app_url
    stores = []
    for name, (filename, lineages) in LAYOUT_FILES[settings.layout].items():
        url = overrides.get(name) or f"sqlite:///{settings.data_dir / filename}"
        stores.append(Store(name, url, lineages))
    if settings.replica_url and settings.layout != "three":
        stores.append(Store("replica", settings.replica_url, (APP_LINEAGE, MARKET_LINEAGE)))
    for store in stores:
        store.backend  # noqa: B018 -- validates the URL early
    return tuple(stores)


@dataclass
class Stores:
    """The stores of one layout with their engines (created lazily, shared).

    Use as a context manager, or call :meth:`close`, to dispose of the engines.
    """

    settings: Settings
    stores: tuple[Store, ...] = field(init=False)
    _engines: dict[tuple[str, bool], Engine] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.stores = resolve_stores(self.settings)

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Store]:
        return iter(self.stores)

    def get(self, name: str) -> Store:
        """The store called *name* (``app``, ``market``, ``replica`` or ``main``)."""
        for store in self.stores:
            if store.name == name:
                return store
        names = ", ".join(store.name for store in self.stores)
        raise NotFoundError(
            f"no store {name!r} in layout {self.settings.layout!r}",
            hint=f"Choose one of: {names}.",
        )

    def primary_for(self, lineage: str) -> Store:
        """The store that holds the primary copy of a lineage's tables."""
        for store in self.stores:
            if lineage in store.lineages and not store.is_replica:
                return store
        raise NotFoundError(f"no store carries lineage {lineage!r}")

    @property
    def app(self) -> Store:
        return self.primary_for(APP_LINEAGE)

    @property
    def market(self) -> Store:
        return self.primary_for(MARKET_LINEAGE)

    def engine(self, store: Store | str, *, create: bool = False) -> Engine:
        """The engine of *store*; with *create*, a missing SQLite file is created."""
        if isinstance(store, str):
            store = self.get(store)
        if store.path is not None:
            if create:
                ensure_data_dir(store.path.parent)
            elif not store.path.exists():
                raise DataDirError(
                    f"store {store.name!r} does not exist: {store.path}",
                    hint="Run `cryptotrading init` to create the databases.",
                )
        key = (store.url, create)
        if key not in self._engines:
            self._engines[key] = create_store_engine(
                store.url,
                create=create,
                busy_timeout_ms=self.settings.sqlite_busy_timeout_ms,
                synchronous=_SYNCHRONOUS.get(store.name, "FULL"),
            )
            # Operations (issue 4): time every statement; slow ones are stored in
            # system_metrics for `cryptotrading health` (see db/timing.py).
            watch_engine(
                self._engines[key],
                store.name,
                self.settings.slow_query_ms,
                self.app.url,
                self.settings.sqlite_busy_timeout_ms,
            )
        return self._engines[key]

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()


def ensure_data_dir(path: Path) -> None:
    """Create the data dir (owner-only) if needed and check that it is writable."""
    if path.exists() and not path.is_dir():
        raise DataDirError(f"data dir {path} exists but is not a directory")
    if not path.exists():
        try:
            path.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise DataDirError(f"cannot create data dir {path}: {exc.strerror}") from None
    try:  # a real probe: permission bits say nothing for root or read-only mounts
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise DataDirError(
            f"data dir {path} is not writable: {exc.strerror}",
            hint="Fix its permissions or mount, or choose another CRYPTOTRADING_DATA_DIR.",
        ) from None
