"""``cryptotrading vault ...``: encrypted exchange credentials."""

from __future__ import annotations

from pathlib import Path

import typer

from cryptotrading.cli._common import command_group, state
from cryptotrading.cli._format import open_app_engine
from cryptotrading.cli._output import JsonOption, console, emit, err_console, print_table
from cryptotrading.security.keyring import load_master_secret, read_key_file
from cryptotrading.security.prompting import read_secrets
from cryptotrading.security.vault import MASK, CredentialSummary, Vault

vault_app = command_group("Encrypted exchange credentials (add, list, show, remove, rotate-key).")

UserOption = typer.Option(..., "--user", help="Owner of the credential.")
ServiceOption = typer.Option(..., "--service", help="Exchange id (ccxt), e.g. binance.")


def _vault(ctx: typer.Context) -> Vault:
    return Vault(open_app_engine(ctx), load_master_secret(state(ctx).settings()))


def _render(items: list[CredentialSummary], title: str) -> None:
    print_table(
        title,
        ["user", "service", "label", "api key", "secret", "passphrase", "key id", "last used"],
        [
            (
                c.username,
                c.service,
                c.label or "-",
                c.api_key_masked,
                MASK if c.has_secret else "-",
                MASK if c.has_passphrase else "-",
                c.key_id,
                c.last_used_at or "-",
            )
            for c in items
        ],
    )


@vault_app.command("add")
def add(
    ctx: typer.Context,
    user: str = UserOption,
    service: str = ServiceOption,
    label: str | None = typer.Option(None, "--label", help="A note, e.g. 'trading, no withdraw'."),
    passphrase: bool = typer.Option(
        False, "--passphrase", help="Also read a passphrase (third value), e.g. for OKX."
    ),
    replace: bool = typer.Option(False, "--replace", help="Overwrite an existing credential."),
    as_json: bool = JsonOption,
) -> None:
    """Store an exchange credential. The API key, then the secret (then the passphrase)
    are prompted (hidden) or read one per line from stdin -- never from argv."""
    vault = _vault(ctx)
    vault.unlock()  # a wrong master secret fails before anything is asked
    names = ["API key", "API secret", *(["Passphrase"] if passphrase else [])]
    values = read_secrets(names)
    summary = vault.add(
        user,
        service,
        values[0],
        values[1] or None,
        passphrase=values[2] if passphrase else None,
        label=label,
        replace=replace,
    )
    emit(
        as_json,
        summary.as_dict(),
        lambda: console.print(f"stored {summary.service} credential of {summary.username}"),
    )


@vault_app.command("list")
def list_(
    ctx: typer.Context,
    user: str | None = typer.Option(None, "--user", help="Only this user's credentials."),
    as_json: bool = JsonOption,
) -> None:
    """List credentials with masked values."""
    items = _vault(ctx).list(user)
    emit(as_json, [c.as_dict() for c in items], lambda: _render(items, "credentials"))


@vault_app.command("show")
def show(
    ctx: typer.Context,
    user: str = UserOption,
    service: str = ServiceOption,
    reveal: bool = typer.Option(False, "--reveal", help="Print the clear API key and secret."),
    as_json: bool = JsonOption,
) -> None:
    """Show one credential, masked unless --reveal."""
    vault = _vault(ctx)
    if not reveal:
        summary = vault.describe(user, service)
        emit(as_json, summary.as_dict(), lambda: _render([summary], "credential"))
        return
    creds = vault.get(user, service)
    payload = {"username": creds.username, "service": creds.service, **creds.ccxt_config()}

    def render() -> None:
        err_console.print(f"{creds.service} credential of {creds.username} (clear text):")
        for name, value in creds.ccxt_config().items():
            typer.echo(f"{name}: {value}")

    emit(as_json, payload, render)


@vault_app.command("remove")
def remove(
    ctx: typer.Context,
    user: str = UserOption,
    service: str = ServiceOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove a credential (ciphertext erased, row kept as an audit record)."""
    summary = _vault(ctx).remove(user, service)
    emit(
        as_json,
        summary.as_dict(),
        lambda: console.print(f"removed {summary.service} credential of {summary.username}"),
    )


@vault_app.command("rotate-key")
def rotate_key(
    ctx: typer.Context,
    new_master_key_file: Path | None = typer.Option(
        None,
        "--new-master-key-file",
        help="Derive the new key from this secret (owner-only file) instead of the current one.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Re-encrypt every credential under a new data key in one transaction and retire
    the old key. Interrupted, the vault stays as it was."""
    vault = _vault(ctx)
    new_master = read_key_file(new_master_key_file) if new_master_key_file else None
    report = vault.rotate_key(new_master=new_master)

    def render() -> None:
        console.print(
            f"re-encrypted {report.credentials} credential(s) under {report.new_key_id}; "
            f"retired: {', '.join(report.retired_key_ids) or '-'}"
        )
        if new_master is not None:
            err_console.print(f"from now on use the master secret in {new_master_key_file}")

    emit(as_json, report.as_dict(), render)


@vault_app.command("keys")
def keys(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List the vault's data keys (metadata only) and how many credentials use each."""
    items = _vault(ctx).data_keys()
    emit(
        as_json,
        [k.as_dict() for k in items],
        lambda: print_table(
            "vault keys",
            ["key id", "status", "algorithm", "kdf", "params", "credentials", "created", "retired"],
            [
                (
                    k.key_id,
                    k.status,
                    k.algorithm,
                    k.kdf,
                    ", ".join(f"{n}={v}" for n, v in k.kdf_params.items()),
                    k.credentials,
                    k.created_at,
                    k.retired_at or "-",
                )
                for k in items
            ],
        ),
    )


@vault_app.command("verify")
def verify(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Unlock the vault and decrypt every credential (exit 8 if one does not)."""
    count = _vault(ctx).verify()
    emit(as_json, {"credentials": count, "ok": True}, lambda: console.print(f"{count} ok"))
