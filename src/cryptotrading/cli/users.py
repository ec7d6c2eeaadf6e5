"""``cryptotrading users ...``: User accounts and API keys."""

from __future__ import annotations

from datetime import timedelta

import typer

from cryptotrading.cli._common import command_group, open_stores
from cryptotrading.cli._output import JsonOption, console, emit, err_console, print_table
from cryptotrading.security.login_throttle import LoginPolicy
from cryptotrading.security.prompting import read_secrets
from cryptotrading.security.users import UserInfo, UserService

users_app = command_group("User accounts and API keys.")


def _service(ctx: typer.Context) -> UserService:
    stores = open_stores(ctx)
    settings = stores.settings
    window = timedelta(minutes=settings.login_lockout_minutes)
    policy = LoginPolicy(max_failures=settings.login_max_failures, window=window, lockout=window)
    return UserService(stores.engine(stores.app), login_policy=policy)


def _render(users: list[UserInfo], title: str) -> None:
    print_table(
        title,
        ["username", "email", "role", "active", "api key", "last login", "created"],
        [
            (
                u.username,
                u.email,
                u.role,
                "yes" if u.is_active else "no",
                f"{u.api_key_prefix}_…" if u.api_key_prefix else "-",
                u.last_login_at or "-",
                u.created_at,
            )
            for u in users
        ],
    )


@users_app.command("add")
def add(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Login name (3-64 letters, digits, . _ -)."),
    email: str = typer.Option(..., "--email", help="Email address (unique)."),
    role: str = typer.Option("trader", "--role", help="Role of the user."),
    as_json: bool = JsonOption,
) -> None:
    """Create a user. The password is prompted twice (hidden), or read from two lines
    of stdin -- never from the command line."""
    (password,) = read_secrets(["Password"], confirm=["Password"])
    user = _service(ctx).create(username, email, password, role=role)
    emit(as_json, user.as_dict(), lambda: console.print(f"created user {user.username}"))


@users_app.command("list")
def list_(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", help="Include deactivated users."),
    as_json: bool = JsonOption,
) -> None:
    """List users (active ones unless --all)."""
    users = _service(ctx).list(include_inactive=all_)
    emit(as_json, [u.as_dict() for u in users], lambda: _render(users, "users"))


@users_app.command("show")
def show(ctx: typer.Context, username: str, as_json: bool = JsonOption) -> None:
    """Show one user (never a password or key hash)."""
    user = _service(ctx).get(username)
    emit(as_json, user.as_dict(), lambda: _render([user], "user"))


@users_app.command("deactivate")
def deactivate(ctx: typer.Context, username: str, as_json: bool = JsonOption) -> None:
    """Deactivate (soft-delete) a user: no more logins, API key revoked, row kept."""
    user = _service(ctx).deactivate(username)
    emit(as_json, user.as_dict(), lambda: console.print(f"deactivated user {user.username}"))


@users_app.command("new-api-key")
def new_api_key(ctx: typer.Context, username: str, as_json: bool = JsonOption) -> None:
    """Issue a new API key for a user (replacing the old one). It is shown ONCE."""
    issued = _service(ctx).issue_api_key(username)
    key = issued.key.get_secret_value()
    payload = {"username": username, "prefix": issued.prefix, "api_key": key}

    def render() -> None:
        err_console.print("New API key (shown only now; store it safely):")
        typer.echo(key)

    emit(as_json, payload, render)


@users_app.command("revoke-api-key")
def revoke_api_key(ctx: typer.Context, username: str, as_json: bool = JsonOption) -> None:
    """Revoke a user's API key."""
    user = _service(ctx).revoke_api_key(username)
    emit(as_json, user.as_dict(), lambda: console.print(f"revoked the API key of {username}"))


@users_app.command("unlock")
def unlock(ctx: typer.Context, username: str, as_json: bool = JsonOption) -> None:
    """Lift the lock that too many failed password logins put on USERNAME."""
    had = _service(ctx).unlock(username)
    message = f"unlocked {username}" if had else f"{username} had no failed logins to forget"
    emit(as_json, {"username": username, "unlocked": had}, lambda: console.print(message))


@users_app.command("login")
def login(
    ctx: typer.Context,
    username: str | None = typer.Argument(None, help="User to authenticate by password."),
    api_key: bool = typer.Option(
        False, "--api-key", help="Authenticate by API key (read from a prompt or stdin)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Check a password (prompt or one stdin line) or, with --api-key, an API key."""
    service = _service(ctx)
    if api_key:
        (key,) = read_secrets(["API key"])
        user = service.authenticate_api_key(key)
    else:
        if username is None:
            raise typer.BadParameter("give USERNAME, or --api-key")
        (password,) = read_secrets(["Password"])
        user = service.authenticate(username, password)
    emit(as_json, user.as_dict(), lambda: console.print(f"authenticated {user.username}"))
