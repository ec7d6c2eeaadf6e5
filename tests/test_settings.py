"""Settings: defaults, environment, config file, precedence and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryptotrading.errors import ConfigurationError
from cryptotrading.settings import load_settings
from cryptotrading.stores import resolve_stores


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DATA_DIR", "LAYOUT", "APP_URL", "MARKET_URL", "REPLICA_URL", "CONFIG"):
        monkeypatch.delenv(f"CRYPTOTRADING_{name}", raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.data_dir == Path("data") and settings.layout == "three"
    names = [(s.name, s.path.name if s.path else None) for s in resolve_stores(settings)]
    assert names == [
        ("app", "cryptotrading.db"),
        ("market", "real_market_data.db"),
        ("replica", "rex.db"),
    ]


def test_precedence_cli_over_env_over_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "cryptotrading.toml").write_text('layout = "single"\ndata_dir = "from-file"\n')
    assert load_settings().layout == "single"
    assert load_settings().data_dir == Path("from-file")
    monkeypatch.setenv("CRYPTOTRADING_LAYOUT", "two")
    assert load_settings().layout == "two"
    assert load_settings(layout="three").layout == "three"


def test_config_file_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text('app_url = "postgresql://u@db:5432/app"\n')
    monkeypatch.setenv("CRYPTOTRADING_CONFIG", str(config))
    stores = resolve_stores(load_settings())
    assert stores[0].backend == "postgresql" and stores[0].path is None


def test_postgres_password_is_masked() -> None:
    settings = load_settings(app_url="postgresql://trader:s3cret@db:5432/app")
    app = resolve_stores(settings)[0]
    assert "s3cret" not in app.display_url and "***" in app.display_url


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"layout": "four"}, "invalid setting layout"),
        ({"sqlite_busy_timeout_ms": -1}, "invalid setting sqlite_busy_timeout_ms"),
    ],
)
def test_invalid_values(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(**overrides)


def test_missing_or_broken_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CRYPTOTRADING_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings()
    broken = tmp_path / "broken.toml"
    broken.write_text("layout = \n")
    monkeypatch.setenv("CRYPTOTRADING_CONFIG", str(broken))
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings()
    monkeypatch.setenv("CRYPTOTRADING_CONFIG", str(tmp_path / "unknown.toml"))
    (tmp_path / "unknown.toml").write_text('colour = "blue"\n')
    with pytest.raises(ConfigurationError, match="colour"):
        load_settings()


def test_single_layout_refuses_a_separate_market_url() -> None:
    settings = load_settings(layout="single", market_url="postgresql://u@h/m")
    with pytest.raises(ConfigurationError, match="single"):
        resolve_stores(settings)
