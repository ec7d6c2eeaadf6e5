"""The credential vault: exchange API keys and secrets in ``api_credentials``,
encrypted with AES-256-GCM under a data key derived from the master secret.

Each encrypted field is bound (associated data) to its row: user id, service name,
field name and key id. A ciphertext copied to another row, field or key fails to
decrypt. :meth:`Vault.rotate_key` re-encrypts every credential under a new data key
in one transaction and retires the old key; a crash leaves the old state intact.

Every operation first checks that the master secret unlocks the active key
(:meth:`Vault._check_master`), so a wrong secret is refused with a
:class:`~cryptotrading.errors.VaultError` before anything is read or written.
"""

from __future__ import annotations

import builtins
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from cryptotrading.common.clock import utcnow
from cryptotrading.common.views import AsDict
from cryptotrading.db.session import read_session, unit_of_work
from cryptotrading.errors import NotFoundError, ValidationError, VaultError
from cryptotrading.models.security import EncryptionKeyMetadata
from cryptotrading.models.users import ApiCredential, User
from cryptotrading.security import keyring
from cryptotrading.security.crypto import KdfParams, SealError, associated_data, open_sealed, seal
from cryptotrading.security.keyring import ACTIVE, RETIRED, DataKey, MasterSecret
from cryptotrading.security.users import find_user, validate_username

log = logging.getLogger(__name__)

SERVICE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_SECRET_CHARS = 16_384
FIELDS = ("api_key", "api_secret", "passphrase")
MASK = "********"
#: PostgreSQL advisory lock serializing vault writers (SQLite: BEGIN IMMEDIATE does).
VAULT_LOCK_ID = 0x63745F7661756C74  # "ct_vault"

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CredentialSummary(AsDict):
    """A credential as it may be listed: masked values only."""

    username: str
    service: str
    label: str | None
    api_key_masked: str
    has_secret: bool
    has_passphrase: bool
    key_id: str | None
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class ExchangeCredentials:
    """Decrypted credentials. Values are :class:`pydantic.SecretStr`: printing,
    ``repr`` or logging shows ``**********``; call ``get_secret_value()`` to use one."""

    username: str
    service: str
    api_key: SecretStr
    api_secret: SecretStr | None
    passphrase: SecretStr | None = None
    label: str | None = None

    def ccxt_config(self) -> dict[str, str]:
        """The clear values under ccxt's names (``apiKey``, ``secret``, ``password``)."""
        config = {"apiKey": self.api_key.get_secret_value()}
        if self.api_secret is not None:
            config["secret"] = self.api_secret.get_secret_value()
        if self.passphrase is not None:
            config["password"] = self.passphrase.get_secret_value()
        return config


@dataclass(frozen=True)
class KeyInfo(AsDict):
    """Metadata of one data key (never the key)."""

    key_id: str
    status: str
    algorithm: str
    kdf: str
    kdf_params: dict[str, Any]
    credentials: int
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class RotationReport(AsDict):
    new_key_id: str
    retired_key_ids: list[str]
    credentials: int
    seconds: float = field(default=0.0)


def mask(value: str) -> str:
    """``********wxyz`` for long values (the last 4 characters help tell keys apart),
    ``********`` for values too short to show any part of safely."""
    return MASK + value[-4:] if len(value) >= 16 else MASK


def validate_service(service: str) -> str:
    normalized = service.strip().lower()
    if not SERVICE.match(normalized):
        raise ValidationError(
            f"invalid service name {service!r}",
            hint="Use the ccxt exchange id, e.g. binance, kraken or coinbase.",
        )
    return normalized


def _validate_value(name: str, value: str | None, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise ValidationError(
                f"the {name.replace('_', ' ')} is empty",
                hint="Paste the value issued by the exchange; nothing was written.",
            )
        return None
    if not value.strip():
        raise ValidationError(f"the {name.replace('_', ' ')} is blank")
    if len(value) > MAX_SECRET_CHARS:
        raise ValidationError(f"the {name.replace('_', ' ')} is over {MAX_SECRET_CHARS} chars")
    return value


def _aad(credential: ApiCredential, field_name: str, key_id: str) -> bytes:
    return associated_data(
        "api_credentials", credential.user_id, credential.service_name, field_name, key_id
    )


class Vault:
    """Encrypted exchange credentials in the application store behind *engine*.

    *kdf_params* are used for keys this vault creates (first use and rotation); an
    existing key is always re-derived with the parameters recorded in its row.
    """

    def __init__(
        self, engine: Engine, master: MasterSecret, *, kdf_params: KdfParams | None = None
    ) -> None:
        self.engine = engine
        self.master = master
        self.kdf_params = kdf_params or KdfParams()
        self._keys: dict[str, DataKey] = {}

    def __repr__(self) -> str:
        return f"Vault(engine={self.engine!r}, master={self.master!r})"

    # -- keys ------------------------------------------------------------------
    def unlock(self) -> str | None:
        """Check that the master secret unlocks the active key; its id (None if the
        vault holds no key yet)."""
        with read_session(self.engine, "vault") as session:
            return self._check_master(session)

    def _check_master(self, session: Session, *, repairing: bool = False) -> str | None:
        """The id of the active key the master secret unlocks; a :class:`VaultError`
        when it unlocks none, or when the vault has keys but none is active. ``None``
        for a vault without keys yet (nothing to check against, nothing to decrypt).

        *repairing* (rotation): several active keys are allowed; one must unlock."""
        rows = keyring.key_rows(session, ACTIVE) if repairing else self._active_rows(session)
        if not rows:
            if keyring.key_rows(session):
                raise self._no_active_key()
            return None
        for row in rows[1:]:  # repairing: any active key the secret unlocks will do
            try:
                return self._data_key(session, row.key_id).key_id
            except VaultError:
                continue
        return self._data_key(session, rows[0].key_id).key_id

    @staticmethod
    def _no_active_key() -> VaultError:
        return VaultError(
            "the vault has keys but none is active",
            hint="Restore encryption_key_metadata from a backup; nothing was changed.",
        )

    @staticmethod
    def _lock(session: Session) -> None:
        """Serialize vault writers, so two first uses never create two active keys and
        no credential is added under a key a concurrent rotation is retiring."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": VAULT_LOCK_ID})

    def _active_rows(self, session: Session) -> list[EncryptionKeyMetadata]:
        rows = keyring.key_rows(session, ACTIVE)
        if len(rows) > 1:
            ids = ", ".join(row.key_id for row in rows)
            raise VaultError(
                f"the vault has {len(rows)} active keys ({ids}); exactly one is allowed",
                hint="Run `cryptotrading vault rotate-key` to re-encrypt under one new key.",
            )
        return rows

    def _data_key(self, session: Session, key_id: str) -> DataKey:
        if key_id not in self._keys:
            self._keys[key_id] = keyring.unlock(keyring.key_row(session, key_id), self.master)
        return self._keys[key_id]

    def _active_key(self, session: Session) -> DataKey:
        rows = self._active_rows(session)
        if rows:
            return self._data_key(session, rows[0].key_id)
        if keyring.key_rows(session):
            raise self._no_active_key()
        key = keyring.create_data_key(session, self.master, self.kdf_params)
        self._keys[key.key_id] = key
        log.info("created vault key %s", key.key_id)
        return key

    def data_keys(self) -> list[KeyInfo]:
        """Metadata of every data key, oldest first, with how many credentials use it."""
        with read_session(self.engine, "vault") as session:
            self._check_master(session)
            counts: dict[str | None, int] = {}
            for key_id in session.scalars(
                select(ApiCredential.key_id).where(ApiCredential.deleted_at.is_(None))
            ):
                counts[key_id] = counts.get(key_id, 0) + 1
            return [
                KeyInfo(
                    row.key_id,
                    row.status,
                    row.algorithm,
                    row.kdf,
                    dict(row.kdf_params),
                    counts.get(row.key_id, 0),
                    row.created_at,
                    row.retired_at,
                )
                for row in keyring.key_rows(session)
            ]

    # -- encryption ------------------------------------------------------------
    def _encrypt(
        self, credential: ApiCredential, key: DataKey, values: dict[str, str | None]
    ) -> None:
        for field_name in FIELDS:
            value = values.get(field_name)
            sealed = (
                None
                if value is None
                else seal(key.key, value.encode(), _aad(credential, field_name, key.key_id))
            )
            setattr(credential, f"{field_name}_encrypted", sealed)
        credential.key_id = key.key_id

    def _decrypt(self, session: Session, credential: ApiCredential) -> dict[str, str | None]:
        where = f"the credential of user id {credential.user_id} for {credential.service_name!r}"
        if credential.key_id is None:
            raise VaultError(f"{where} names no vault key", hint="Remove and add it again.")
        key = self._data_key(session, credential.key_id)
        values: dict[str, str | None] = {}
        for field_name in FIELDS:
            sealed = getattr(credential, f"{field_name}_encrypted")
            if sealed is None:
                values[field_name] = None
                continue
            try:
                plain = open_sealed(key.key, sealed, _aad(credential, field_name, key.key_id))
            except SealError:
                raise VaultError(
                    f"{where} does not decrypt: its {field_name} was altered or moved "
                    "from another row",
                    hint="Remove the credential and add it again from the exchange's values.",
                ) from None
            values[field_name] = plain.decode()
        return values

    # -- credentials -----------------------------------------------------------
    def add(
        self,
        username: str,
        service: str,
        api_key: str,
        api_secret: str | None = None,
        *,
        passphrase: str | None = None,
        label: str | None = None,
        replace: bool = False,
    ) -> CredentialSummary:
        """Encrypt and store a credential for *username* at *service*."""
        validate_username(username)
        service = validate_service(service)
        values = {
            "api_key": _validate_value("api_key", api_key, required=True),
            "api_secret": _validate_value("api_secret", api_secret, required=False),
            "passphrase": _validate_value("passphrase", passphrase, required=False),
        }
        if label is not None and len(label) > 128:
            raise ValidationError("the label is longer than 128 characters")
        with unit_of_work(self.engine, "vault") as session:
            self._lock(session)
            self._check_master(session)
            user = find_user(session, username)
            key = self._active_key(session)
            credential = self._row(session, user, service, deleted_too=True)
            if credential is not None and credential.deleted_at is None and not replace:
                raise ValidationError(
                    f"{username!r} already has a credential for {service!r}",
                    hint="Pass --replace (replace=True) to overwrite it, or remove it first.",
                )
            if credential is None:
                credential = ApiCredential(user_id=user.id, service_name=service)
                session.add(credential)
            elif credential.deleted_at is not None:  # re-adding a removed credential
                credential.last_used_at = None
            credential.label = label
            credential.is_active = True
            credential.deleted_at = None
            self._encrypt(credential, key, values)
            session.flush()
            log.info("stored credential of %s for %s under %s", username, service, key.key_id)
            return self._summary(user, credential, values["api_key"])

    def get(self, username: str, service: str) -> ExchangeCredentials:
        """The decrypted credential (marks it used)."""
        service = validate_service(service)
        with unit_of_work(self.engine, "vault") as session:
            _user, credential, values = self._open(session, username, service)
            credential.last_used_at = utcnow()
            session.flush()

        def secret(name: str) -> SecretStr | None:
            value = values[name]
            return None if value is None else SecretStr(value)

        return ExchangeCredentials(
            username,
            service,
            SecretStr(values["api_key"] or ""),
            secret("api_secret"),
            secret("passphrase"),
            credential.label,
        )

    def describe(self, username: str, service: str) -> CredentialSummary:
        """The masked view of one credential (decrypts to check it and to mask the key)."""
        service = validate_service(service)
        with read_session(self.engine, "vault") as session:
            user, credential, values = self._open(session, username, service)
            return self._summary(user, credential, values["api_key"])

    def list(self, username: str | None = None) -> list[CredentialSummary]:
        """Masked views of every credential (of *username* only, if given)."""
        with read_session(self.engine, "vault") as session:
            self._check_master(session)
            query = (
                select(User, ApiCredential)
                .join(ApiCredential, ApiCredential.user_id == User.id)
                .where(ApiCredential.deleted_at.is_(None))
                .order_by(User.username, ApiCredential.service_name)
            )
            if username is not None:
                query = query.where(User.id == find_user(session, username, active=False).id)
            return [
                self._summary(user, credential, self._decrypt(session, credential)["api_key"])
                for user, credential in session.execute(query)
            ]

    def remove(self, username: str, service: str) -> CredentialSummary:
        """Soft-delete a credential; its ciphertext is erased, the row kept for audit."""
        service = validate_service(service)
        with unit_of_work(self.engine, "vault") as session:
            self._lock(session)
            self._check_master(session)
            user = find_user(session, username, active=False)
            credential = self._existing(session, user, service)
            summary = self._summary(user, credential, None)
            credential.soft_delete()
            credential.is_active = False
            credential.api_key_encrypted = b""
            credential.api_secret_encrypted = None
            credential.passphrase_encrypted = None
            credential.key_id = None
            session.flush()
            log.info("removed credential of %s for %s", username, service)
            return summary

    def verify(self) -> int:
        """Decrypt every stored credential; the count, or a VaultError naming the first
        one that does not decrypt."""
        with read_session(self.engine, "vault") as session:
            self._check_master(session)
            credentials = self._stored(session)
            for credential in credentials:
                self._decrypt(session, credential)
            return len(credentials)

    # -- rotation --------------------------------------------------------------
    def rotate_key(
        self, *, new_master: MasterSecret | None = None, progress: Progress | None = None
    ) -> RotationReport:
        """Re-encrypt every credential under a new data key (derived from *new_master*
        if given, else from the current master secret) and retire the old keys, all
        in one transaction: a crash or an error leaves the vault as it was."""

        started = time.perf_counter()
        master = new_master or self.master
        with unit_of_work(self.engine, "vault rotation") as session:
            self._lock(session)
            self._check_master(session, repairing=True)
            old_rows = keyring.key_rows(session, ACTIVE)  # more than one: repaired here
            credentials = self._stored(session)
            decrypted = [(c, self._decrypt(session, c)) for c in credentials]  # old keys OK
            new_key = keyring.create_data_key(session, master, self.kdf_params)
            for done, (credential, values) in enumerate(decrypted, start=1):
                self._encrypt(credential, new_key, values)
                session.flush()
                if progress is not None:
                    progress(done, len(decrypted))
            retired_at = utcnow()
            for row in keyring.key_rows(session, ACTIVE):
                if row.key_id != new_key.key_id:
                    row.status = RETIRED
                    row.retired_at = retired_at
            session.flush()
        self.master = master
        self._keys = {new_key.key_id: new_key}
        report = RotationReport(
            new_key.key_id,
            [row.key_id for row in old_rows],
            len(decrypted),
            round(time.perf_counter() - started, 3),
        )
        log.info(
            "rotated the vault to %s: %d credentials, retired %s",
            report.new_key_id,
            report.credentials,
            report.retired_key_ids,
        )
        return report

    # -- helpers ---------------------------------------------------------------
    @staticmethod
    def _stored(session: Session) -> builtins.list[ApiCredential]:
        """Every credential that holds ciphertext (removed ones hold none)."""
        return list(
            session.scalars(
                select(ApiCredential)
                .where(ApiCredential.deleted_at.is_(None))
                .order_by(ApiCredential.id)
            )
        )

    @staticmethod
    def _row(
        session: Session, user: User, service: str, *, deleted_too: bool = False
    ) -> ApiCredential | None:
        query = select(ApiCredential).where(
            ApiCredential.user_id == user.id, ApiCredential.service_name == service
        )
        if not deleted_too:
            query = query.where(ApiCredential.deleted_at.is_(None))
        return session.scalar(query)

    def _open(
        self, session: Session, username: str, service: str
    ) -> tuple[User, ApiCredential, dict[str, str | None]]:
        """The owner, the credential and its decrypted values (the master key checked)."""
        self._check_master(session)
        user = find_user(session, username)
        credential = self._existing(session, user, service)
        return user, credential, self._decrypt(session, credential)

    def _existing(self, session: Session, user: User, service: str) -> ApiCredential:
        credential = self._row(session, user, service)
        if credential is None:
            raise NotFoundError(
                f"{user.username!r} has no credential for {service!r}",
                hint="List credentials with `cryptotrading vault list`.",
            )
        return credential

    @staticmethod
    def _summary(user: User, credential: ApiCredential, api_key: str | None) -> CredentialSummary:
        return CredentialSummary(
            username=user.username,
            service=credential.service_name,
            label=credential.label,
            api_key_masked=MASK if api_key is None else mask(api_key),
            has_secret=credential.api_secret_encrypted is not None,
            has_passphrase=credential.passphrase_encrypted is not None,
            key_id=credential.key_id,
            created_at=credential.created_at,
            last_used_at=credential.last_used_at,
        )
