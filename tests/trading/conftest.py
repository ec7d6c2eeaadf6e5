"""Fixtures of the trading tests: an app engine with one user."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from cryptotrading.stores import Stores
from tests.trading.helpers import make_user


@pytest.fixture
def app_engine(stores: Stores) -> Engine:
    return stores.engine(stores.app)


@pytest.fixture
def user_id(app_engine: Engine) -> int:
    return make_user(app_engine)
