"""Moved to ``tests/helpers.py``; this name stays only while ``tests/fuzz`` imports it."""

from tests.helpers import make_user

__all__ = ["make_user"]
