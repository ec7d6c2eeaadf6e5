"""Security: user accounts and API keys, the encrypted credential vault and its keys.

>>> from cryptotrading.security import UserService, Vault, load_master_secret
"""

from __future__ import annotations

from cryptotrading.security.api_keys import IssuedApiKey
from cryptotrading.security.crypto import KdfParams
from cryptotrading.security.keyring import MasterSecret, load_master_secret
from cryptotrading.security.login_throttle import LoginPolicy
from cryptotrading.security.users import UserInfo, UserService
from cryptotrading.security.vault import (
    CredentialSummary,
    ExchangeCredentials,
    KeyInfo,
    RotationReport,
    Vault,
)

__all__ = [
    "CredentialSummary",
    "ExchangeCredentials",
    "IssuedApiKey",
    "KdfParams",
    "KeyInfo",
    "LoginPolicy",
    "MasterSecret",
    "RotationReport",
    "UserInfo",
    "UserService",
    "Vault",
    "load_master_secret",
]
