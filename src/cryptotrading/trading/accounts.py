"""Find a user by id or username (the CLI's ``--user``)."""

from __future__ import annotations

from sqlalchemy import Engine, select

from cryptotrading.db.session import read_session
from cryptotrading.errors import NotFoundError
from cryptotrading.models.users import User


def resolve_user(engine: Engine, ref: str) -> int:
    """The id of the user named *ref* (a numeric id or a username)."""
    with read_session(engine, "app store") as session:
        query = select(User.id).where(User.deleted_at.is_(None))
        if ref.isdigit():
            found = session.execute(query.where(User.id == int(ref))).scalar_one_or_none()
        else:
            found = session.execute(query.where(User.username == ref)).scalar_one_or_none()
    if found is None:
        raise NotFoundError(
            f"user {ref!r} does not exist",
            hint="Give a user id or username (`cryptotrading users list`).",
        )
    return found
