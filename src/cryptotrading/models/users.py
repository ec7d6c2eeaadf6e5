"""Category 1 -- users and authentication: ``users``, ``api_credentials``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cryptotrading.models._common import (
    Base,
    IdMixin,
    SoftDeleteMixin,
    TimestampMixin,
    table_args,
)


class User(IdMixin, TimestampMixin, SoftDeleteMixin, Base):
    """A user account. The spec's ``api_key`` is kept as a lookup prefix plus a hash;
    the key itself is shown once and never stored."""

    __tablename__ = "users"
    __table_args__ = table_args("1.0.0")

    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    api_key_prefix: Mapped[str | None] = mapped_column(String(16), unique=True)
    api_key_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    role: Mapped[str] = mapped_column(String(32), default="trader")
    last_login_at: Mapped[datetime | None]


class ApiCredential(IdMixin, TimestampMixin, SoftDeleteMixin, Base):
    """An exchange API key and secret, encrypted (AES-256-GCM) under ``key_id``."""

    __tablename__ = "api_credentials"
    __table_args__ = table_args("1.0.0", UniqueConstraint("user_id", "service_name"))

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    service_name: Mapped[str] = mapped_column(String(64))
    api_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    api_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    passphrase_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(
        String(64),
        ForeignKey("encryption_key_metadata.key_id"),
        index=True,
        info={"since": "2.0.0"},
    )
    label: Mapped[str | None] = mapped_column(String(128))
    is_active: Mapped[bool] = mapped_column(default=True)
    last_used_at: Mapped[datetime | None]
