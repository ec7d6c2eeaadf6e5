"""Settings: data dir, layout, store URLs and the master-key source.

Precedence, highest first: explicit arguments (CLI flags), ``CRYPTOTRADING_*``
environment variables, the TOML config file (``cryptotrading.toml`` in the working
directory, or the file named by ``CRYPTOTRADING_CONFIG``), then the defaults below.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from cryptotrading.errors import ConfigurationError

Layout = Literal["three", "two", "single"]

CONFIG_ENV = "CRYPTOTRADING_CONFIG"
DEFAULT_CONFIG_FILE = "cryptotrading.toml"
#: Default cap on the (decompressed) bytes one import reads into memory: 2 GiB.
DEFAULT_MAX_IMPORT_BYTES = 2 * 1024**3


class Settings(BaseSettings):
    """Validated configuration of one cryptotrading process."""

    model_config = SettingsConfigDict(
        env_prefix="CRYPTOTRADING_",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(default=Path("data"), description="Directory of the SQLite files.")
    layout: Layout = Field(default="three", description="How the stores map to databases.")
    app_url: str | None = Field(default=None, description="URL of the application store.")
    market_url: str | None = Field(default=None, description="URL of the market-data store.")
    replica_url: str | None = Field(default=None, description="URL of the replica store.")
    master_key_file: Path | None = Field(
        default=None, description="File holding the vault master secret (else the env var)."
    )
    backup_key_file: Path | None = Field(
        default=None, description="Key signing backup manifests (default <data_dir>/backup.key)."
    )
    pgbackrest_dir: Path = Field(
        default=Path("/var/lib/pgbackrest/cryptotrading"),
        description="pgBackRest config, repository and scratch space of PostgreSQL "
        "point-in-time recovery; the PostgreSQL server's OS user must be able to reach it.",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=30_000, ge=0, description="How long a SQLite writer waits for a lock."
    )
    slow_query_ms: float = Field(
        default=500.0, ge=0, description="Statements slower than this are logged as slow."
    )
    login_max_failures: int = Field(
        default=5, ge=1, description="Failed password logins that lock an account name."
    )
    login_lockout_minutes: float = Field(
        default=15.0, gt=0, description="Counting window and lock duration of failed logins."
    )
    max_import_bytes: int = Field(
        default=DEFAULT_MAX_IMPORT_BYTES,
        ge=1,
        description="Largest file an import reads (bytes after decompression; default 2 GiB).",
    )
    native_reads: bool = Field(
        default=True,
        description="Large SQLite candle reads step the statement in compiled code.",
    )
    # -- retention and reclaim (``ops run`` jobs retention, reclaim; 0 = keep forever) --
    retention_metrics_days: float = Field(
        default=30.0, ge=0, description="Days system_metrics rows are kept (0: forever)."
    )
    retention_health_days: float = Field(
        default=30.0, ge=0, description="Days system_health rows are kept (0: forever)."
    )
    retention_events_days: float = Field(
        default=90.0, ge=0, description="Days monitoring_events rows are kept (0: forever)."
    )
    retention_error_logs_days: float = Field(
        default=90.0, ge=0, description="Days error_logs rows are kept (0: forever)."
    )
    retention_messages_days: float = Field(
        default=7.0, ge=0, description="Days processed a2a_messages are kept (0: forever)."
    )
    retention_processed_keys_days: float = Field(
        default=7.0,
        ge=0,
        description="Days a consumer's processed idempotency keys are kept (0: forever); "
        "a redelivery inside the window is never processed twice.",
    )
    retention_dead_letters_days: float = Field(
        default=0.0,
        ge=0,
        description="Days dead-lettered and expired a2a_messages are kept (0: until redriven "
        "or purged by hand).",
    )
    a2a_open_messaging: bool = Field(
        default=False,
        description="Let any two active agents message each other (default: only agents "
        "with an active a2a_connections row).",
    )
    a2a_max_payload_bytes: int = Field(
        default=256 * 1024, ge=2, description="Largest message payload (compact JSON bytes)."
    )
    a2a_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Visibility timeout: a claimed message not acknowledged within it is "
        "delivered again.",
    )
    a2a_max_attempts: int = Field(
        default=5, ge=1, description="Deliveries of a message before it is dead-lettered."
    )
    a2a_backoff_base_seconds: float = Field(
        default=1.0, ge=0, description="Retry delay after the first failed delivery (doubles)."
    )
    a2a_backoff_max_seconds: float = Field(
        default=300.0, ge=0, description="Longest retry delay of a negatively acknowledged message."
    )
    agent_memory_limit: int = Field(
        default=1000,
        ge=1,
        description="Memories kept per agent; storing more evicts the least relevant.",
    )
    agent_memory_half_life_hours: float = Field(
        default=168.0,
        gt=0,
        description="Hours after which an untouched agent memory counts half as relevant.",
    )
    retention_quality_days: float = Field(
        default=180.0, ge=0, description="Days data_quality_metrics rows are kept (0: forever)."
    )
    retention_deleted_days: float = Field(
        default=0.0,
        ge=0,
        description="Days soft-deleted rows are kept before `ops run` purges them "
        "(0: forever; `db purge-deleted --older-than` purges on demand).",
    )
    retention_batch_rows: int = Field(
        default=5_000, ge=1, description="Rows one retention transaction deletes at most."
    )
    reclaim_free_ratio: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="Free share of a SQLite file (free pages / pages) that triggers VACUUM.",
    )
    reclaim_min_bytes: int = Field(
        default=1024**2, ge=0, description="Free bytes below which a file is never rebuilt."
    )
    sqlite_auto_vacuum: Literal["incremental", "none"] = Field(
        default="incremental",
        description="auto_vacuum mode a SQLite file gets at its next VACUUM "
        "(incremental: later reclaims free pages without a rebuild).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`, turning validation failures into a ConfigurationError.

    ``None`` values in *overrides* are ignored so CLI options left unset fall through
    to the environment and the config file.
    """
    explicit = {key: value for key, value in overrides.items() if value is not None}
    config_file = os.environ.get(CONFIG_ENV)
    problem = _config_file_problem(config_file) if config_file else None
    if problem:
        raise ConfigurationError(
            f"config file {config_file!r} named by {CONFIG_ENV} {problem}",
            hint=f"Point {CONFIG_ENV} at a TOML file, or unset it.",
        )
    try:
        return Settings(**explicit)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise ConfigurationError(
            f"invalid setting {where}: {first['msg']}",
            hint="Fix the CRYPTOTRADING_* variable, the CLI option or cryptotrading.toml.",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            f"config file is not valid TOML: {exc}",
            hint="Fix the syntax of cryptotrading.toml.",
        ) from None
    except (UnicodeDecodeError, OSError) as exc:  # a binary, unreadable or special file
        name = config_file or DEFAULT_CONFIG_FILE
        raise ConfigurationError(
            f"cannot read config file {name!r}: {exc}",
            hint=f"The config file must be UTF-8 TOML text; fix it or unset {CONFIG_ENV}.",
        ) from None


def _config_file_problem(name: str) -> str | None:
    """Why *name* cannot be the config file, or None when it is a regular file."""
    try:
        mode = os.stat(name).st_mode
    except FileNotFoundError:
        return "does not exist"
    except (OSError, ValueError) as exc:  # too long, a loop, a NUL byte ...
        return f"cannot be opened ({exc})"
    return None if stat.S_ISREG(mode) else "is not a regular file"
