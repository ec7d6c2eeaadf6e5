"""User accounts: create, get, list, deactivate (soft delete), authenticate by
password or API key, issue and revoke API keys."""

from __future__ import annotations

import logging
import re
import secrets
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from cryptotrading.common.clock import utcnow
from cryptotrading.common.views import AsDict
from cryptotrading.db.session import read_session, unit_of_work
from cryptotrading.errors import AuthenticationError, NotFoundError, ValidationError
from cryptotrading.models.users import User
from cryptotrading.security import api_keys, passwords
from cryptotrading.security.api_keys import IssuedApiKey
from cryptotrading.security.login_throttle import LoginPolicy, LoginThrottle

log = logging.getLogger(__name__)

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
ROLE = re.compile(r"^[a-z][a-z_]{0,31}$")


@dataclass(frozen=True)
class UserInfo(AsDict):
    """What may be shown about a user: never a hash."""

    id: int
    username: str
    email: str
    role: str
    is_active: bool
    api_key_prefix: str | None
    created_at: datetime
    last_login_at: datetime | None
    deleted_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserInfo:
        return cls(
            id=user.id,
            username=user.username,
            email=user.email,
            role=user.role,
            is_active=user.is_active and user.deleted_at is None,
            api_key_prefix=user.api_key_prefix,
            created_at=user.created_at,
            last_login_at=user.last_login_at,
            deleted_at=user.deleted_at,
        )


def validate_username(username: str) -> str:
    if not USERNAME.match(username):
        raise ValidationError(
            f"invalid username {username!r}",
            hint="Use 3-64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return username


def validate_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 255 or not EMAIL.match(email):
        raise ValidationError(
            f"invalid email address {email!r}", hint="Give an address like name@example.com."
        )
    return email


def find_user(session: Session, username: str, *, active: bool = True) -> User:
    """The user called *username* (only an active one when *active*)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or (active and (user.deleted_at is not None or not user.is_active)):
        state = "no user" if user is None else "no active user"
        raise NotFoundError(
            f"{state} {username!r}",
            hint="List users with `cryptotrading users list --all`; create one with `users add`.",
        )
    return user


class UserService:
    """Users in the application store reached through *engine*."""

    def __init__(
        self,
        engine: Engine,
        hasher: PasswordHasher = passwords.DEFAULT_HASHER,
        *,
        login_policy: LoginPolicy | None = None,
    ) -> None:
        """*login_policy*: how many failed password logins lock a name, for how long
        (:mod:`cryptotrading.security.login_throttle`)."""
        self.engine = engine
        self.hasher = hasher
        self.throttle = LoginThrottle(engine, login_policy)
        #: What a login for an unknown or inactive name verifies against: prepared now,
        #: at the hasher's parameters, so every login path costs one verification.
        self.dummy_hash = passwords.dummy_hash(hasher)

    def create(self, username: str, email: str, password: str, *, role: str = "trader") -> UserInfo:
        """A new active user; duplicate names/emails and weak passwords are rejected."""
        validate_username(username)
        email = validate_email(email)
        if not ROLE.match(role):
            raise ValidationError(
                f"invalid role {role!r}", hint="Use a lower-case word, e.g. trader."
            )
        passwords.check_policy(password, username=username, email=email)
        password_hash = passwords.hash_password(password, self.hasher)
        with unit_of_work(self.engine, "users") as session:
            clash = session.execute(
                select(User.username, User.email).where(
                    or_(func.lower(User.username) == username.lower(), User.email == email)
                )
            ).first()
            if clash is not None:
                what = "username" if clash.username.lower() == username.lower() else "email"
                value = clash.username if what == "username" else email
                raise ValidationError(
                    f"{what} {value!r} is already taken",
                    hint=f"Choose another {what}; deactivated accounts keep theirs.",
                )
            user = User(username=username, email=email, password_hash=password_hash, role=role)
            session.add(user)
            session.flush()
            log.info("created user %s", username)
            return UserInfo.of(user)

    def get(self, username: str) -> UserInfo:
        with self._reading() as session:
            return UserInfo.of(find_user(session, username, active=False))

    def list(self, *, include_inactive: bool = False) -> list[UserInfo]:
        query = select(User).order_by(User.username)
        if not include_inactive:
            query = query.where(User.deleted_at.is_(None), User.is_active.is_(True))
        with self._reading() as session:
            return [UserInfo.of(user) for user in session.scalars(query)]

    def deactivate(self, username: str) -> UserInfo:
        """Soft-delete *username*: it can no longer log in, its API key is revoked."""
        with unit_of_work(self.engine, "users") as session:
            user = find_user(session, username, active=False)
            if user.deleted_at is None:
                user.soft_delete()
            user.is_active = False
            user.api_key_prefix = None
            user.api_key_hash = None
            session.flush()
            log.info("deactivated user %s", username)
            return UserInfo.of(user)

    def authenticate(self, username: str, password: str) -> UserInfo:
        """The user if *password* is right; rehashes it when the parameters changed.

        Unknown, inactive and existing names take the same path: exactly one Argon2
        verification (against :attr:`dummy_hash` when there is no usable account), one
        failure counted on error, so timing does not tell which accounts exist. A name
        with too many recent failures is refused before any hashing, whether it exists
        or not (:class:`~cryptotrading.security.login_throttle.LoginThrottle`)."""
        counting = self.throttle.check(username)
        try:
            user = self._verify_password(username, password)
        except AuthenticationError:
            failures = self.throttle.record_failure(username)
            log.warning("failed login for %r (%d in the current window)", username, failures)
            raise
        if counting:
            self.throttle.clear(username)
        return user

    def unlock(self, username: str) -> bool:
        """Lift a login lock on *username* (True when there were failures to forget)."""
        return self.throttle.clear(username)

    def _verify_password(self, username: str, password: str) -> UserInfo:
        with unit_of_work(self.engine, "users") as session:
            # A name no account can have is not looked up (a database may not even
            # store it as text, e.g. NUL on PostgreSQL); it is verified alike below.
            user = (
                session.scalar(select(User).where(User.username == username))
                if USERNAME.match(username)
                else None
            )
            usable = user is not None and user.is_active and user.deleted_at is None
            # One verification on every path, so timing does not reveal users.
            stored = user.password_hash if user is not None and usable else self.dummy_hash
            matches = passwords.verify_password(stored, password, self.hasher)
            if user is None or not usable or not matches:
                raise AuthenticationError("invalid username or password")
            if passwords.needs_rehash(user.password_hash, self.hasher):
                user.password_hash = passwords.hash_password(password, self.hasher)
                log.info("rehashed the password of %s with new parameters", username)
            user.last_login_at = utcnow()
            session.flush()
            return UserInfo.of(user)

    def issue_api_key(self, username: str) -> IssuedApiKey:
        """A new API key for *username*, replacing any previous one. Show it once."""
        with unit_of_work(self.engine, "users") as session:
            user = find_user(session, username)
            issued = api_keys.generate()
            while session.scalar(select(User.id).where(User.api_key_prefix == issued.prefix)):
                issued = api_keys.generate()  # 48-bit prefixes: a clash is rare
            user.api_key_prefix = issued.prefix
            user.api_key_hash = issued.digest
            session.flush()
            log.info("issued API key %s for %s", issued.prefix, username)
            return issued

    def revoke_api_key(self, username: str) -> UserInfo:
        with unit_of_work(self.engine, "users") as session:
            user = find_user(session, username, active=False)
            user.api_key_prefix = None
            user.api_key_hash = None
            session.flush()
            return UserInfo.of(user)

    def authenticate_api_key(self, key: str) -> UserInfo:
        """The active user owning *key* (digest compared in constant time)."""
        prefix = api_keys.lookup_prefix(key.strip())
        with self._reading() as session:
            user = (
                session.scalar(select(User).where(User.api_key_prefix == prefix))
                if prefix is not None
                else None
            )
            digest = user.api_key_hash if user is not None and user.api_key_hash else ""
            ok = api_keys.matches(key.strip(), digest or api_keys.digest(secrets.token_hex(8)))
            if user is None or not digest or not ok or not user.is_active or user.deleted_at:
                raise AuthenticationError("invalid API key")
            return UserInfo.of(user)

    def _reading(self) -> AbstractContextManager[Session]:
        return read_session(self.engine, "users")
