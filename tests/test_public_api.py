"""The public API is exactly ``__all__`` (sorted), and every error is in one tree."""

from __future__ import annotations

import importlib
import inspect

import pytest

import cryptotrading
from cryptotrading import errors


def test_all_is_sorted_and_complete() -> None:
    assert cryptotrading.__all__ == sorted(cryptotrading.__all__)
    for name in cryptotrading.__all__:
        assert hasattr(cryptotrading, name), name
    public = {
        name
        for name, value in vars(cryptotrading).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public <= set(cryptotrading.__all__), public - set(cryptotrading.__all__)


@pytest.mark.parametrize(
    "module",
    [
        "cryptotrading.agents",
        "cryptotrading.intelligence",
        "cryptotrading.market",
        "cryptotrading.models",
        "cryptotrading.security",
        "cryptotrading.trading",
    ],
)
def test_subpackage_exports_resolve(module: str) -> None:
    package = importlib.import_module(module)
    exported = package.__all__
    assert len(exported) == len(set(exported))
    for name in exported:
        assert hasattr(package, name), f"{module}.{name}"


def test_every_error_is_exported() -> None:
    for name, value in vars(errors).items():
        if inspect.isclass(value) and issubclass(value, errors.CryptotradingError):
            assert name in cryptotrading.__all__, name


def test_one_exception_tree_with_hints() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, Exception)
    ]
    assert all(issubclass(cls, errors.CryptotradingError) for cls in classes)
    for cls in classes:
        error = cls("something went wrong")
        assert error.hint and error.exit_code >= 1
        assert str(error) == "something went wrong"
    assert errors.ValidationError("x", hint="do y").hint == "do y"
