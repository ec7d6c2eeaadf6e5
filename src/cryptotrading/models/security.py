"""Category 12 -- security: metadata of the vault's encryption keys (never the keys)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from cryptotrading.models._common import Base, CreatedAtMixin, IdMixin, table_args


class EncryptionKeyMetadata(IdMixin, CreatedAtMixin, Base):
    """How a data key is derived from the master secret: KDF, salt, parameters.

    ``key_check`` is an AEAD tag over a constant that proves a derived key is the
    right one without storing the key."""

    __tablename__ = "encryption_key_metadata"
    __table_args__ = table_args(
        "2.0.0", CheckConstraint("status IN ('active', 'retired')", name="status")
    )

    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    algorithm: Mapped[str] = mapped_column(String(32))
    kdf: Mapped[str] = mapped_column(String(32))
    kdf_params: Mapped[dict[str, Any]]
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    key_check: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="active")
    retired_at: Mapped[datetime | None]
