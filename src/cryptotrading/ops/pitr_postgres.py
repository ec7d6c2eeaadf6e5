"""PostgreSQL point-in-time recovery with pgBackRest and WAL archiving.

pgBackRest works on whole clusters: one *stanza* per cluster (``cryptotrading-<port>``),
its config, repository, logs and scratch space under ``Settings.pgbackrest_dir``
(default ``/var/lib/pgbackrest/cryptotrading``), all owned by the cluster's OS user
(``postgres``), who runs ``archive_command`` and must read the data directory. So the
cluster must be on this machine, and every pgBackRest command runs as that user: this
process must be root (it switches user) or that user itself.

* :func:`setup` writes the stanza into the config, sets ``archive_mode=on`` and
  ``archive_command`` with ``ALTER SYSTEM``, creates the stanza, checks that archiving
  works and takes the first full backup. ``archive_mode`` takes a restart of the
  cluster: with ``restart=True`` it is restarted (``pg_ctlcluster`` on Debian,
  ``pg_ctl restart`` elsewhere; every session is disconnected); without, the result
  says so (``restart_needed``, with the command) and the check and the backup wait
  for the next run of :func:`setup` after the restart.
* :func:`backup` takes a full (``weekly``) or differential (``daily``) backup and lets
  pgBackRest expire the old ones: 4 full and 7 differential kept by default (the
  policy of ``backup prune``); the WAL archive is kept back to the oldest full.
* :func:`restore_to` brings one database back to a moment: ``pgbackrest restore
  --type=time`` of the newest base backup that ended before it into a scratch data
  directory, a temporary postmaster (socket only, archiving off) replaying the WAL up
  to the moment, ``pg_dump`` of the one database there, ``pg_restore`` into a new
  database of the live cluster, the row counts compared, then the swap of
  :func:`cryptotrading.ops.backup_postgres.swap_databases` (the live database is kept
  aside). The scratch cluster is removed in every case; one a killed restore left
  behind is removed (its postmaster stopped) by the next restore.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from cryptotrading.common.clock import as_utc, iso
from cryptotrading.common.views import AsDict
from cryptotrading.db.engine import parse_url
from cryptotrading.db.session import translate_errors
from cryptotrading.errors import (
    ConfigurationError,
    NotFoundError,
    StoreError,
    ValidationError,
)
from cryptotrading.models import LINEAGES, lineage_tables
from cryptotrading.ops import backup_lineage, backup_postgres
from cryptotrading.ops.pitr_result import PitrResult
from cryptotrading.stores import Store, Stores

STANZA_PREFIX = "cryptotrading-"
RESTORE_PREFIX = "restore-"
#: Backup kinds of ``backup create --kind`` and the pgBackRest backup type of each.
BACKUP_TYPES = {"weekly": "full", "daily": "diff"}
DEFAULT_KEEP_DAILY = 7
DEFAULT_KEEP_WEEKLY = 4
_ONE_SECOND = timedelta(seconds=1)
_INSTALL_HINT = (
    "Install pgBackRest (apt-get install pgbackrest), then run `cryptotrading backup setup`."
)


# -- the cluster behind a store ---------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    """The PostgreSQL cluster holding a store's database, as pgBackRest needs it."""

    data_directory: Path
    port: int
    socket_dir: str
    major: int
    config_file: str
    superuser: str
    uid: int
    gid: int
    owner: str

    @property
    def stanza(self) -> str:
        return f"{STANZA_PREFIX}{self.port}"

    @property
    def bindir(self) -> Path:
        debian = Path(f"/usr/lib/postgresql/{self.major}/bin")
        if (debian / "postgres").exists():
            return debian
        found = shutil.which("postgres")
        if found is None:
            raise ConfigurationError(
                f"the PostgreSQL {self.major} server programs are not found",
                hint="Install the server package of the cluster's version (postgresql-"
                f"{self.major}) or put its bin directory on PATH.",
            )
        return Path(found).parent


def _admin(url: str) -> Engine:
    """An autocommit engine on the cluster's maintenance database ``postgres``."""
    return create_engine(
        parse_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )


def cluster_of(url: str) -> Cluster:
    """Find the cluster of *url*: data directory, port, socket, version, owner.

    Needs a superuser (or ``pg_read_all_settings``) and the data directory on this
    machine."""
    engine = _admin(url)
    try:
        with translate_errors("backup pitr"), engine.connect() as connection:

            def show(name: str) -> str:
                return str(connection.exec_driver_sql(f"SHOW {name}").scalar() or "")

            try:
                data_directory = show("data_directory")
            except StoreError as exc:
                raise ConfigurationError(
                    f"cannot read the data directory of the server of "
                    f"{parse_url(url).render_as_string()}: {exc.message}",
                    hint="Point-in-time recovery needs a superuser (or pg_read_all_settings) "
                    "in the store URL.",
                ) from None
            port = int(show("port"))
            sockets = [s.strip() for s in show("unix_socket_directories").split(",") if s.strip()]
            major = int(show("server_version_num")) // 10000
            config_file = show("config_file")
            superuser = str(
                connection.exec_driver_sql("SELECT rolname FROM pg_roles WHERE oid = 10").scalar()
            )
    finally:
        engine.dispose()
    try:
        status = os.stat(data_directory)
    except OSError:
        raise ConfigurationError(
            f"the data directory {data_directory} of the store's PostgreSQL server is not on "
            "this machine (or not readable)",
            hint="Run point-in-time recovery commands on the database server itself, as root "
            "or as the server's OS user.",
        ) from None
    try:
        import pwd

        owner = pwd.getpwuid(status.st_uid).pw_name
    except KeyError:
        owner = str(status.st_uid)
    if not sockets:
        raise ConfigurationError(
            "the PostgreSQL server has no unix socket (unix_socket_directories is empty)",
            hint="pgBackRest connects through the local socket; set unix_socket_directories.",
        )
    return Cluster(
        Path(data_directory),
        port,
        sockets[0],
        major,
        config_file,
        superuser,
        status.st_uid,
        status.st_gid,
        owner,
    )


def _as_owner(cluster: Cluster) -> dict[str, Any]:
    """subprocess arguments that run a program as the cluster's OS user."""
    euid = os.geteuid()
    if euid == cluster.uid:
        return {}
    if euid == 0:
        return {"user": cluster.uid, "group": cluster.gid, "extra_groups": []}
    raise ConfigurationError(
        f"pgBackRest must run as the PostgreSQL server's OS user {cluster.owner!r}; this "
        f"process runs as uid {euid}",
        hint=f"Run the command as root or as {cluster.owner} "
        f"(sudo -u {cluster.owner} cryptotrading ...).",
    )


# -- the pgBackRest directory and config --------------------------------------------------


@dataclass(frozen=True)
class Repo:
    """``Settings.pgbackrest_dir``: config, repository, logs, locks and scratch space."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "pgbackrest.conf"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    def subdirs(self) -> tuple[Path, ...]:
        return (self.repo, self.root / "log", self.root / "lock", self.root / "spool", self.scratch)


def binary() -> str:
    found = shutil.which("pgbackrest") or (
        "/usr/bin/pgbackrest" if Path("/usr/bin/pgbackrest").exists() else None
    )
    if found is None:
        raise ConfigurationError(
            "pgBackRest is not installed; PostgreSQL point-in-time recovery needs it",
            hint=_INSTALL_HINT,
        )
    return found


def _prepare(repo: Repo, cluster: Cluster) -> None:
    """Create the pgBackRest directories, owned by the cluster's OS user, and check that
    this user can reach them."""
    owner = _as_owner(cluster)
    try:
        repo.root.mkdir(mode=0o750, parents=True, exist_ok=True)
        for path in (repo.root, *repo.subdirs()):
            path.mkdir(mode=0o750, exist_ok=True)
            if owner:
                os.chown(path, cluster.uid, cluster.gid)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the pgBackRest directory {repo.root}: {exc}",
            hint="Set CRYPTOTRADING_PGBACKREST_DIR to a directory this user can create.",
        ) from None
    reachable = subprocess.run(
        ["test", "-w", str(repo.repo)], cwd="/", check=False, capture_output=True, **owner
    )
    if reachable.returncode != 0:
        raise ConfigurationError(
            f"the PostgreSQL server's OS user {cluster.owner!r} cannot write {repo.repo} "
            "(a parent directory is private)",
            hint="Set CRYPTOTRADING_PGBACKREST_DIR to a directory outside private "
            "directories, e.g. /var/lib/pgbackrest/cryptotrading.",
        )


def _read_config(repo: Repo) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    if repo.config.exists():
        try:
            parser.read(repo.config, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"the pgBackRest config {repo.config} cannot be read: {exc}",
                hint="Remove it and run `cryptotrading backup setup` again.",
            ) from None
    return parser


def _write_config(repo: Repo, cluster: Cluster, keep_daily: int, keep_weekly: int) -> None:
    """Add or update the cluster's stanza (other stanzas are kept)."""
    parser = _read_config(repo)
    parser["global"] = {
        **(dict(parser["global"]) if parser.has_section("global") else {}),
        "repo1-path": str(repo.repo),
        "repo1-retention-full-type": "count",
        "repo1-retention-full": str(keep_weekly),
        "repo1-retention-diff": str(keep_daily),
        "log-path": str(repo.root / "log"),
        "lock-path": str(repo.root / "lock"),
        "spool-path": str(repo.root / "spool"),
        "compress-type": "lz4",
        "start-fast": "y",
        "process-max": "2",
        "log-level-console": "warn",
        "log-level-file": "info",
    }
    parser[cluster.stanza] = {
        "pg1-path": str(cluster.data_directory),
        "pg1-port": str(cluster.port),
        "pg1-socket-path": cluster.socket_dir,
        "pg1-user": cluster.superuser,
    }
    partial = repo.config.with_name(repo.config.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        handle.write("# Written by `cryptotrading backup setup`; one stanza per cluster.\n")
        parser.write(handle)
    partial.chmod(0o640)
    if _as_owner(cluster):
        os.chown(partial, cluster.uid, cluster.gid)
    os.replace(partial, repo.config)


def _has_stanza(repo: Repo, cluster: Cluster) -> bool:
    return _read_config(repo).has_section(cluster.stanza)


def _run_pgbackrest(
    cluster: Cluster, repo: Repo, command: str, *options: str, what: str | None = None
) -> str:
    """Run ``pgbackrest <command>`` for the cluster's stanza as its OS user; stdout."""
    argv = [binary(), f"--config={repo.config}", f"--stanza={cluster.stanza}", *options, command]
    completed = subprocess.run(
        argv, cwd="/", capture_output=True, text=True, check=False, **_as_owner(cluster)
    )
    if completed.returncode != 0:
        lines = (completed.stderr + "\n" + completed.stdout).strip().splitlines()
        detail = next((line for line in lines if "ERROR" in line), lines[0] if lines else "")
        raise StoreError(
            f"pgbackrest {what or command} failed (exit {completed.returncode}): "
            f"{detail.strip() or 'no message'}",
            hint=f"See the pgBackRest log in {repo.root / 'log'}; `cryptotrading backup "
            "setup` (re)creates the stanza and checks WAL archiving.",
        )
    return str(completed.stdout)


# -- base backups -------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseBackup(AsDict):
    """One pgBackRest backup of a cluster (``full`` or ``diff``)."""

    label: str
    type: str
    stanza: str
    started_at: str
    stopped_at: str
    lsn_start: str
    lsn_stop: str
    size_bytes: int
    repo_bytes: int

    @property
    def stopped(self) -> datetime:
        return datetime.fromisoformat(self.stopped_at)


def _info(cluster: Cluster, repo: Repo) -> dict[str, Any]:
    output = _run_pgbackrest(cluster, repo, "info", "--output=json")
    try:
        stanzas = json.loads(output)
    except json.JSONDecodeError:
        raise StoreError(
            "pgbackrest info printed no JSON", hint=f"See the log in {repo.root / 'log'}."
        ) from None
    for stanza in stanzas:
        if stanza.get("name") == cluster.stanza:
            return dict(stanza)
    return {}


def _base_backups(cluster: Cluster, repo: Repo) -> list[BaseBackup]:
    """The cluster's backups, oldest first."""
    found = []
    for item in _info(cluster, repo).get("backup", []):
        stamps = item["timestamp"]
        found.append(
            BaseBackup(
                label=item["label"],
                type=item["type"],
                stanza=cluster.stanza,
                started_at=datetime.fromtimestamp(stamps["start"], UTC).isoformat(),
                stopped_at=datetime.fromtimestamp(stamps["stop"], UTC).isoformat(),
                lsn_start=item["lsn"]["start"],
                lsn_stop=item["lsn"]["stop"],
                size_bytes=int(item["info"]["size"]),
                repo_bytes=int(item["info"]["repository"]["size"]),
            )
        )
    return sorted(found, key=lambda b: (b.stopped_at, b.label))


def _pg_store(stores: Stores, store_name: str) -> Store:
    store = stores.get(store_name)
    if store.backend != "postgresql":
        raise ValidationError(
            f"store {store.name!r} is not on PostgreSQL; pgBackRest recovers PostgreSQL stores",
            hint="A SQLite store is brought back to a moment from its backups and change log.",
        )
    return store


def _clusters(stores: Stores, store_name: str | None) -> list[tuple[Cluster, list[str]]]:
    """The clusters of the PostgreSQL stores (or of *store_name*), each with its stores."""
    if store_name is not None:
        chosen = [_pg_store(stores, store_name)]
    else:
        chosen = [s for s in stores if s.backend == "postgresql" and not s.is_replica]
    if not chosen:
        raise ConfigurationError(
            "no store is on PostgreSQL; pgBackRest point-in-time recovery is for PostgreSQL stores",
            hint="Point CRYPTOTRADING_APP_URL / CRYPTOTRADING_MARKET_URL at PostgreSQL, or "
            "use the SQLite backups and change log.",
        )
    clusters: dict[Path, tuple[Cluster, list[str]]] = {}
    for store in chosen:
        cluster = cluster_of(store.url)
        clusters.setdefault(cluster.data_directory, (cluster, []))[1].append(store.name)
    return list(clusters.values())


def _ready(repo: Repo, cluster: Cluster) -> None:
    if not repo.config.exists() or not _has_stanza(repo, cluster):
        raise NotFoundError(
            f"point-in-time recovery is not set up for the PostgreSQL cluster on port "
            f"{cluster.port} (no stanza {cluster.stanza} in {repo.config})",
            hint="Run `cryptotrading backup setup` first.",
        )


def list_base_backups(stores: Stores, store_name: str) -> list[BaseBackup]:
    """The pgBackRest backups of the cluster of *store_name*, oldest first."""
    store = _pg_store(stores, store_name)
    cluster = cluster_of(store.url)
    repo = Repo(stores.settings.pgbackrest_dir)
    _ready(repo, cluster)
    return _base_backups(cluster, repo)


def _retention(keep_daily: int, keep_weekly: int) -> tuple[str, ...]:
    if keep_weekly < 1 or keep_daily < 0:
        raise ValidationError(
            "pgBackRest keeps at least one full (weekly) backup and no negative number of "
            "differential (daily) ones",
            hint="Pass --keep-weekly of 1 or more and --keep-daily of 0 or more.",
        )
    return (
        "--repo1-retention-full-type=count",
        f"--repo1-retention-full={keep_weekly}",
        *((f"--repo1-retention-diff={keep_daily}",) if keep_daily else ()),
    )


def backup(
    stores: Stores,
    store_name: str | None = None,
    kind: str = "weekly",
    *,
    keep_daily: int = DEFAULT_KEEP_DAILY,
    keep_weekly: int = DEFAULT_KEEP_WEEKLY,
) -> list[BaseBackup]:
    """A full (``weekly``) or differential (``daily``; full when there is none yet)
    pgBackRest backup of the cluster of every PostgreSQL store (or of *store_name*),
    then expire backups beyond *keep_weekly* full and *keep_daily* differential ones
    (WAL older than the oldest full kept goes with them). Returns the new backups."""
    if kind not in BACKUP_TYPES:
        raise ValidationError(
            f"unknown backup kind {kind!r}", hint=f"Choose one of: {', '.join(BACKUP_TYPES)}."
        )
    retention = _retention(keep_daily, keep_weekly)
    repo = Repo(stores.settings.pgbackrest_dir)
    made = []
    for cluster, _names in _clusters(stores, store_name):
        _ready(repo, cluster)
        before = {b.label for b in _base_backups(cluster, repo)}
        _run_pgbackrest(cluster, repo, "backup", f"--type={BACKUP_TYPES[kind]}", *retention)
        made += [b for b in _base_backups(cluster, repo) if b.label not in before]
    return made


def prune(
    stores: Stores,
    keep_daily: int = DEFAULT_KEEP_DAILY,
    keep_weekly: int = DEFAULT_KEEP_WEEKLY,
) -> list[str]:
    """``pgbackrest expire`` with the 7 daily / 4 weekly policy on every cluster that is
    set up; returns the labels removed."""
    retention = _retention(keep_daily, keep_weekly)
    repo = Repo(stores.settings.pgbackrest_dir)
    removed: list[str] = []
    for cluster, _names in _clusters(stores, None):
        if not repo.config.exists() or not _has_stanza(repo, cluster):
            continue
        before = {b.label for b in _base_backups(cluster, repo)}
        _run_pgbackrest(cluster, repo, "expire", *retention)
        removed += sorted(before - {b.label for b in _base_backups(cluster, repo)})
    return removed


# -- setup --------------------------------------------------------------------------------


@dataclass
class ClusterSetup(AsDict):
    """What ``backup setup`` did for one cluster."""

    stanza: str
    stores: list[str]
    data_directory: str
    port: int
    config: str
    repo: str
    archive_command: str
    restart_needed: bool = False
    restart_command: str = ""
    restarted: bool = False
    first_backup: str | None = None
    ready: bool = False


@dataclass
class SetupResult(AsDict):
    clusters: list[ClusterSetup] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return bool(self.clusters) and all(c.ready for c in self.clusters)


def _sql_literal(text: str) -> str:
    """*text* as an SQL string literal, ``%`` doubled for the driver's placeholders."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


def _restart_argv(cluster: Cluster) -> tuple[list[str], bool]:
    """The command restarting the cluster, and whether it runs as the OS user."""
    debian = re.fullmatch(r"/etc/postgresql/([^/]+)/([^/]+)/postgresql\.conf", cluster.config_file)
    ctlcluster = shutil.which("pg_ctlcluster")
    if debian and ctlcluster:
        redirect = [] if Path("/run/systemd/system").exists() else ["--skip-systemctl-redirect"]
        return [ctlcluster, *redirect, debian[1], debian[2], "restart"], False
    pg_ctl = str(cluster.bindir / "pg_ctl")
    return [pg_ctl, "-D", str(cluster.data_directory), "restart", "-m", "fast", "-w"], True


def _restart(url: str, cluster: Cluster) -> None:
    argv, as_owner = _restart_argv(cluster)
    extra = _as_owner(cluster) if as_owner else {}
    completed = subprocess.run(argv, cwd="/", capture_output=True, text=True, check=False, **extra)
    if completed.returncode != 0:
        lines = (completed.stderr or completed.stdout).strip().splitlines()
        raise StoreError(
            f"restarting the PostgreSQL cluster failed: {lines[-1] if lines else 'no message'}",
            hint=f"Restart it yourself ({shlex.join(argv)}), then run `cryptotrading backup "
            "setup` again.",
        )
    engine = _admin(url)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with engine.connect() as connection:
                    connection.exec_driver_sql("SELECT 1")
                return
            except Exception:  # still starting up
                if time.monotonic() > deadline:
                    raise StoreError(
                        "the PostgreSQL cluster does not answer after its restart",
                        hint="Look at the server log.",
                    ) from None
                time.sleep(0.5)
    finally:
        engine.dispose()


def _configure_archiving(url: str, archive_command: str) -> bool:
    """``ALTER SYSTEM`` archive_command (and archive_mode=on, wal_level=replica when
    lower), reload; returns whether a restart is still needed."""
    engine = _admin(url)
    try:
        with translate_errors("backup setup"), engine.connect() as connection:

            def setting(name: str) -> str:
                return str(
                    connection.exec_driver_sql(
                        "SELECT setting FROM pg_settings WHERE name = %(n)s", {"n": name}
                    ).scalar()
                )

            connection.exec_driver_sql(
                f"ALTER SYSTEM SET archive_command = {_sql_literal(archive_command)}"
            )
            if setting("archive_mode") not in ("on", "always"):
                connection.exec_driver_sql("ALTER SYSTEM SET archive_mode = 'on'")
            if setting("wal_level") == "minimal":
                connection.exec_driver_sql("ALTER SYSTEM SET wal_level = 'replica'")
            connection.exec_driver_sql("SELECT pg_reload_conf()")
            return setting("archive_mode") not in ("on", "always") or setting("wal_level") == (
                "minimal"
            )
    finally:
        engine.dispose()


def setup(
    stores: Stores,
    store_name: str | None = None,
    *,
    restart: bool = False,
    first_backup: bool = True,
    keep_daily: int = DEFAULT_KEEP_DAILY,
    keep_weekly: int = DEFAULT_KEEP_WEEKLY,
) -> SetupResult:
    """Set up WAL archiving and a pgBackRest stanza for the cluster of every PostgreSQL
    store (or of *store_name*); idempotent. See the module docstring for the restart."""
    _retention(keep_daily, keep_weekly)
    repo = Repo(stores.settings.pgbackrest_dir)
    result = SetupResult()
    for cluster, names in _clusters(stores, store_name):
        url = stores.get(names[0]).url
        _prepare(repo, cluster)
        _write_config(repo, cluster, keep_daily, keep_weekly)
        command = (
            f"{shlex.quote(binary())} --config={shlex.quote(str(repo.config))} "
            f"--stanza={cluster.stanza} archive-push %p"
        )
        done = ClusterSetup(
            cluster.stanza,
            names,
            str(cluster.data_directory),
            cluster.port,
            str(repo.config),
            str(repo.repo),
            command,
        )
        result.clusters.append(done)
        done.restart_needed = _configure_archiving(url, command)
        done.restart_command = shlex.join(_restart_argv(cluster)[0])
        if done.restart_needed and restart:
            _restart(url, cluster)
            done.restarted = True
            done.restart_needed = _configure_archiving(url, command)
        _run_pgbackrest(cluster, repo, "stanza-create")
        if done.restart_needed:
            continue
        _run_pgbackrest(cluster, repo, "check")
        if first_backup and not _base_backups(cluster, repo):
            _run_pgbackrest(
                cluster, repo, "backup", "--type=full", *_retention(keep_daily, keep_weekly)
            )
            backups = _base_backups(cluster, repo)
            done.first_backup = backups[-1].label if backups else None
        done.ready = True
    return result


# -- restore to a moment ------------------------------------------------------------------


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_postmaster(directory: Path) -> None:
    """Stop a postmaster still running on *directory* (a killed restore's)."""
    try:
        pid = int((directory / "postmaster.pid").read_text().split("\n", 1)[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if str(directory).encode() not in cmdline:
        return
    with suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def remove_leftovers(repo: Repo) -> list[str]:
    """Remove the scratch clusters of restores that were killed (their process is
    gone), stopping their postmaster first; returns what was removed."""
    removed: list[str] = []
    if not repo.scratch.is_dir():
        return removed
    for entry in sorted(repo.scratch.iterdir()):
        match = re.fullmatch(rf"{RESTORE_PREFIX}(\d+)-[0-9a-f]+(\.dump|\.log)?", entry.name)
        if match is None or (int(match[1]) != os.getpid() and _pid_alive(int(match[1]))):
            continue
        if entry.is_dir():
            _stop_postmaster(entry)
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    return removed


def _choose_base(backups: list[BaseBackup], backup_id: str | None, target: datetime) -> BaseBackup:
    """The base backup for *target*: *backup_id*, or the newest that ended before it
    (a backup is usable from the second after its end)."""
    if not backups:
        raise NotFoundError(
            "there is no pgBackRest backup to start a point-in-time restore from",
            hint="Take one: `cryptotrading backup setup` makes the first full backup.",
        )
    oldest = backups[0]
    if backup_id is not None:
        chosen = next((b for b in backups if b.label == backup_id), None)
        if chosen is None:
            raise NotFoundError(
                f"no pgBackRest backup {backup_id!r}",
                hint="Known: " + ", ".join(b.label for b in backups[-5:]) + ".",
            )
        candidates = [chosen]
    else:
        candidates = list(reversed(backups))
    for candidate in candidates:
        if _restorable_from(candidate) <= target:
            return candidate
    earliest = _restorable_from(candidates[-1] if backup_id else oldest)
    raise ValidationError(
        f"{iso(target)} is before the {'chosen' if backup_id else 'oldest kept'} base backup "
        f"(it ended at {candidates[-1].stopped_at if backup_id else oldest.stopped_at}); "
        "nothing was restored",
        hint=f"Choose a time from {iso(earliest)} on"
        + (" or another backup." if backup_id else "."),
    )


def _restorable_from(backup_: BaseBackup) -> datetime:
    return backup_.stopped.replace(microsecond=0) + _ONE_SECOND


def check_target(target: datetime, now: datetime | None = None) -> datetime:
    """*target* as UTC; a ValidationError when it is in the future."""
    target = as_utc(target, "the time to restore to")
    now = now or datetime.now(UTC)
    if target > now:
        raise ValidationError(
            f"{iso(target)} is in the future (it is {iso(now.replace(microsecond=0))}); "
            "nothing was restored",
            hint="Give a moment in the past; the latest one restorable is now.",
        )
    return target


def _archive_up_to_now(url: str, cluster: Cluster, repo: Repo) -> None:
    """Commit a transaction after the target and push the current WAL segment into the
    archive (``pgbackrest check`` switches the segment and waits for it), so recovery
    finds a commit after the target and stops there instead of failing at the end."""
    engine = _admin(url)
    try:
        with translate_errors("backup restore"), engine.connect() as connection:
            connection.exec_driver_sql("SELECT pg_current_xact_id()")
    finally:
        engine.dispose()
    _run_pgbackrest(cluster, repo, "check", what="check (WAL archiving up to now)")


_SCRATCH_CONF = {
    "postgresql.conf": "# scratch cluster of a cryptotrading point-in-time restore\n",
    "pg_hba.conf": "local all all trust\n",
    "pg_ident.conf": "",
}


class _Postmaster:
    """A temporary postmaster on a scratch data directory: socket only, no archiving."""

    def __init__(self, cluster: Cluster, data: Path, log: Path) -> None:
        self.cluster = cluster
        self.data = data
        self.log = log
        self.port = _free_port()
        self.socket_dir = tempfile.mkdtemp(prefix="ctpitr-")
        owner = _as_owner(cluster)
        if owner:
            os.chown(self.socket_dir, cluster.uid, cluster.gid)
        for name, text in _SCRATCH_CONF.items():
            path = data / name
            path.write_text(text, encoding="utf-8")
            if owner:
                os.chown(path, cluster.uid, cluster.gid)
        argv = [
            str(cluster.bindir / "postgres"),
            "-D", str(data),
            "-p", str(self.port),
            "-c", "listen_addresses=",
            "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", "archive_mode=off",
            "-c", "logging_collector=off",
            "-c", "hot_standby=off",  # no connections (nor parameter checks) before promotion
            "-c", "fsync=off",  # a throw-away copy: no data-directory sync, no flushes
        ]  # fmt: skip
        with log.open("ab") as handle:
            self.process = subprocess.Popen(
                argv, cwd="/", stdin=subprocess.DEVNULL, stdout=handle, stderr=handle, **owner
            )

    def conninfo(self, database: str) -> str:
        return make_conninfo(
            host=self.socket_dir, port=self.port, user=self.cluster.superuser, dbname=database
        )

    def log_text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def wait_promoted(self) -> None:
        """Wait until recovery reached the target and the server was promoted."""
        while True:
            code = self.process.poll()
            if code is not None:
                lines = self.log_text().strip().splitlines()
                fatal = [line for line in lines if "FATAL" in line or "PANIC" in line]
                detail = (fatal or lines or [f"exit code {code}"])[-1]
                gap = "before configured recovery target was reached" in detail
                raise StoreError(
                    f"point-in-time recovery failed: {detail}",
                    hint="The live database is untouched. "
                    + (
                        "The WAL archive misses segments between the base backup and the "
                        "target (archiving was off or failing for a while): only times "
                        "after a full backup taken since then can be reached "
                        "(`cryptotrading backup setup` checks archiving)."
                        if gap
                        else "See the server log lines above; `cryptotrading backup setup` "
                        "checks WAL archiving."
                    ),
                )
            try:
                with psycopg.connect(self.conninfo("postgres"), connect_timeout=2) as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                    if row is not None and not row[0]:
                        return
            except psycopg.Error:
                pass  # still starting or replaying
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGQUIT)
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


_REDO_DONE = re.compile(r"redo done at ([0-9A-F]+/[0-9A-F]+)")
_LAST_COMMIT = re.compile(r"last completed transaction was at log time (\S+ \S+)")


def _recovery_facts(log: str, base: BaseBackup) -> tuple[int | None, str | None]:
    """WAL bytes replayed (from the base backup's start to where redo stopped) and the
    time of the last transaction kept, read from the scratch server's log."""
    redo = _REDO_DONE.findall(log)
    replayed = max(0, _lsn(redo[-1]) - _lsn(base.lsn_start)) if redo else None
    last = _LAST_COMMIT.findall(log)
    recovered = None
    if last:
        with suppress(ValueError):
            recovered = iso(datetime.fromisoformat(last[-1].replace("+00", "+00:00")))
    return replayed, recovered


def _scratch_contents(
    postmaster: _Postmaster, database: str, store: Store
) -> backup_lineage.Contents:
    tables = [t.name for lineage in store.lineages for t in lineage_tables(lineage)]
    try:
        conn = psycopg.connect(postmaster.conninfo(database), autocommit=True)
    except psycopg.OperationalError as exc:
        if "does not exist" in str(exc):
            raise NotFoundError(
                f"database {database!r} did not exist at the time to restore to; nothing "
                "was restored",
                hint="Choose a later time.",
            ) from None
        raise StoreError(f"cannot read the recovered database: {exc}") from None
    with conn:
        existing = {
            str(row[0])
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        }

        def first_value(sql: str) -> Any:
            row = conn.execute(sql.encode()).fetchone()
            return None if row is None else row[0]

        versions, counts = backup_lineage.versions_and_counts(
            first_value, existing, LINEAGES, tables
        )
    return backup_lineage.Contents(versions, counts, frozenset(existing))


def _dump(postmaster: _Postmaster, database: str, target: Path) -> None:
    command = [
        backup_postgres.tool("pg_dump"), "-Fc", "-Z0", "--no-owner", "--no-privileges",
        "-f", str(target), f"--dbname={postmaster.conninfo(database)}",
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines()
        raise StoreError(
            f"pg_dump of the recovered database failed: {lines[-1] if lines else 'no message'}",
            hint="Check the free space of the pgBackRest directory; the live database is "
            "untouched.",
        )


@contextmanager
def _scratch(repo: Repo, cluster: Cluster) -> Iterator[Path]:
    """A new, empty scratch data directory owned by the cluster's OS user; removed
    (with the dump and log beside it) on exit, whatever happened."""
    remove_leftovers(repo)
    data = repo.scratch / f"{RESTORE_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    data.mkdir(mode=0o700)
    if _as_owner(cluster):
        os.chown(data, cluster.uid, cluster.gid)
    try:
        yield data
    finally:
        _stop_postmaster(data)
        shutil.rmtree(data, ignore_errors=True)
        for suffix in (".dump", ".log"):
            data.with_name(data.name + suffix).unlink(missing_ok=True)


def restore_to(
    stores: Stores,
    store_name: str,
    backup_id: str | None,
    target: datetime,
    *,
    force: bool = False,
) -> PitrResult:
    """Bring PostgreSQL store *store_name* back to *target* (see the module docstring).

    *backup_id* is a pgBackRest label (None: the newest backup that ended before the
    target). Refused before anything is changed when the target is in the future or
    before the base backup, or -- unless *force* -- while other sessions use the
    database (and when its rows change while the restore runs); the live database is
    kept aside as ``<name>_pre_pitr_<time>``.
    """
    started = time.perf_counter()
    phases: dict[str, float] = {}
    mark = started

    def phase(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = round(now - mark, 3)
        mark = now

    target = check_target(target)
    store = _pg_store(stores, store_name)
    cluster = cluster_of(store.url)
    repo = Repo(stores.settings.pgbackrest_dir)
    _ready(repo, cluster)
    _prepare(repo, cluster)
    base = _choose_base(_base_backups(cluster, repo), backup_id, target)
    stores.close()  # our own connections must not count as another user
    since = backup_postgres.begin_restore(store.url, force=force)
    live_name = str(parse_url(store.url).database)
    phase("prepare")
    _archive_up_to_now(store.url, cluster, repo)
    phase("archive")
    with _scratch(repo, cluster) as data:
        log = data.with_name(data.name + ".log")
        dump = data.with_name(data.name + ".dump")
        _run_pgbackrest(
            cluster, repo, "restore",
            f"--pg1-path={data}",
            f"--set={base.label}",
            "--type=time",
            f"--target={target.strftime('%Y-%m-%d %H:%M:%S.%f')}+00",
            "--target-action=promote",
            "--archive-mode=off",
            f"--tablespace-map-all={data / 'tablespaces'}",
        )  # fmt: skip
        phase("restore")
        postmaster = _Postmaster(cluster, data, log)
        try:
            postmaster.wait_promoted()
            phase("recovery")
            source = _scratch_contents(postmaster, live_name, store)
            _dump(postmaster, live_name, dump)
            phase("dump")
        finally:
            postmaster.stop()
        replayed, recovered = _recovery_facts(postmaster.log_text(), base)
        # the scratch cluster is done with: remove it while the database loads
        remover = threading.Thread(target=shutil.rmtree, args=(data, True), daemon=True)
        remover.start()
        tables = [t.name for lineage in store.lineages for t in lineage_tables(lineage)]
        with backup_postgres.scratch_restore(store.url, dump, tables, keep=True) as (
            restored,
            contents,
        ):
            _verify(store, source, contents)
        phase("load")
        stamp = datetime.now(UTC).strftime("%Y%m%dt%H%M%S")
        aside = f"{live_name[:37]}_pre_pitr_{stamp}"
        kept = backup_postgres.swap_databases(store.url, restored, aside, force=force, since=since)
        phase("swap")
        remover.join()
    phase("cleanup")
    return PitrResult(
        store=store.name,
        backend="postgresql",
        target=str(iso(target)),
        base_backup=base.label,
        base_backup_time=base.stopped_at,
        kept_aside=aside if kept else "",
        seconds=round(time.perf_counter() - started, 3),
        row_counts=dict(contents.counts),
        wal_bytes_replayed=replayed,
        recovered_to=recovered,
        forced=force,
        phases=phases,
    )


def _verify(
    store: Store, source: backup_lineage.Contents, restored: backup_lineage.Contents
) -> None:
    """The database loaded into the live cluster must be one of the store's lineages
    and hold exactly the rows recovered in the scratch cluster."""
    problems = backup_lineage.problems(restored, store.lineages)
    differing = [
        f"{table}: {restored.counts.get(table)} rows, recovered {count}"
        for table, count in sorted(source.counts.items())
        if restored.counts.get(table) != count
    ]
    if source.versions != restored.versions:
        differing.append(f"versions {restored.versions} != recovered {source.versions}")
    if problems or differing:
        raise ValidationError(
            f"the database recovered for store {store.name!r} does not check out, nothing "
            f"was restored: {'; '.join((problems + differing)[:5])}",
            hint="The live database is untouched; choose another time or base backup.",
        )
