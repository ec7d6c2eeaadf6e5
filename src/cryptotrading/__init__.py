"""cryptotrading: the persistence layer of an AI-driven crypto-trading platform.

Only the names in ``__all__`` are public; everything else may change.
"""

from cryptotrading.db.session import unit_of_work
from cryptotrading.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    CryptotradingError,
    DataDirError,
    IntegrityViolationError,
    LeaseLostError,
    NotFoundError,
    SchemaVersionError,
    StoreBusyError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
    VaultError,
)
from cryptotrading.market import MarketStore
from cryptotrading.ops.lifecycle import initialize
from cryptotrading.security import UserService, Vault
from cryptotrading.settings import Settings, load_settings
from cryptotrading.stores import Store, Stores

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "CryptotradingError",
    "DataDirError",
    "IntegrityViolationError",
    "LeaseLostError",
    "MarketStore",
    "NotFoundError",
    "SchemaVersionError",
    "Settings",
    "Store",
    "StoreBusyError",
    "StoreError",
    "StoreUnavailableError",
    "Stores",
    "UserService",
    "ValidationError",
    "Vault",
    "VaultError",
    "__version__",
    "initialize",
    "load_settings",
    "unit_of_work",
]
