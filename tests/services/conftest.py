"""Fixtures of the services tests: the app engine and a user."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from cryptotrading.stores import Stores
from tests.trading.helpers import make_user


@pytest.fixture
def engine(stores: Stores) -> Engine:
    return stores.engine(stores.app)


@pytest.fixture
def user_id(engine: Engine) -> int:
    return make_user(engine)
