"""The public API is exactly ``__all__`` (sorted), and every error is in one tree."""

from __future__ import annotations

import inspect

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
