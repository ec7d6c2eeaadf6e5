"""Database layer: engines, portable types, the declarative base, units of work and
statement timing (:mod:`cryptotrading.db.timing`). The UTC clock is
:mod:`cryptotrading.common.clock`."""

from cryptotrading.db.base import Base
from cryptotrading.db.engine import READ_ONLY, backend_of, create_store_engine, mask_url
from cryptotrading.db.session import translate_errors, unit_of_work

__all__ = [
    "READ_ONLY",
    "Base",
    "backend_of",
    "create_store_engine",
    "mask_url",
    "translate_errors",
    "unit_of_work",
]
