"""The credential vault: round trips, tampering, swapped rows, wrong keys, rotation."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from cryptotrading.errors import NotFoundError, ValidationError, VaultError
from cryptotrading.models.security import EncryptionKeyMetadata
from cryptotrading.models.users import ApiCredential, User
from cryptotrading.security import Vault
from tests.security.helpers import API_KEY, MASTER, OTHER_MASTER, SECRET, snapshot


def _credential(engine: Engine, username: str, service: str) -> ApiCredential:
    with Session(engine) as session:
        row = session.scalar(
            select(ApiCredential)
            .join(User, User.id == ApiCredential.user_id)
            .where(User.username == username, ApiCredential.service_name == service)
        )
        assert row is not None
        session.expunge(row)
        return row


def test_round_trip(vault: Vault, app_engine: Engine) -> None:
    summary = vault.add("alice", "Binance", API_KEY, SECRET, passphrase="pass phrase!", label="l1")
    assert summary.service == "binance" and summary.api_key_masked == "********" + API_KEY[-4:]
    assert summary.has_secret and summary.has_passphrase and summary.key_id
    creds = vault.get("alice", "binance")
    assert creds.api_key.get_secret_value() == API_KEY
    assert creds.api_secret is not None and creds.api_secret.get_secret_value() == SECRET
    assert creds.ccxt_config() == {"apiKey": API_KEY, "secret": SECRET, "password": "pass phrase!"}
    for text in (repr(creds), str(creds), repr(summary), repr(vault), str(summary.as_dict())):
        assert API_KEY not in text and SECRET not in text
    row = _credential(app_engine, "alice", "binance")
    assert row.last_used_at is not None and row.key_id == summary.key_id
    for blob in (row.api_key_encrypted, row.api_secret_encrypted, row.passphrase_encrypted):
        assert blob is not None
        assert API_KEY.encode() not in blob and SECRET.encode() not in blob
    # a second vault object (a new process) derives the same key from the master
    assert Vault(app_engine, MASTER).get("alice", "binance").ccxt_config()["secret"] == SECRET


secret_text = st.text(min_size=1, max_size=300).filter(lambda value: bool(value.strip()))


@given(api_key=secret_text, api_secret=st.one_of(st.none(), secret_text))
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # replace=True: re-runnable
)
def test_round_trip_of_arbitrary_secrets(
    vault: Vault, api_key: str, api_secret: str | None
) -> None:
    vault.add("alice", "binance", api_key, api_secret, replace=True)
    creds = vault.get("alice", "binance")
    assert creds.api_key.get_secret_value() == api_key
    assert (creds.api_secret and creds.api_secret.get_secret_value()) == api_secret
    blank = dataclasses.replace(
        creds, api_key=SecretStr("x"), api_secret=creds.api_secret and SecretStr("y")
    )
    assert repr(creds) == repr(blank)  # the values never influence repr()


def test_list_and_describe_are_masked(vault: Vault) -> None:
    vault.add("alice", "binance", API_KEY, SECRET)
    vault.add("alice", "kraken", "short-key", None)
    vault.add("bob", "binance", API_KEY[::-1], SECRET[::-1])
    listed = vault.list()
    assert [(c.username, c.service) for c in listed] == [
        ("alice", "binance"),
        ("alice", "kraken"),
        ("bob", "binance"),
    ]
    assert listed[1].api_key_masked == "********" and not listed[1].has_secret
    assert [c.service for c in vault.list("bob")] == ["binance"]
    assert vault.describe("alice", "binance") == listed[0]
    dumped = str([c.as_dict() for c in listed])
    assert API_KEY not in dumped and SECRET not in dumped and "short-key" not in dumped


@pytest.mark.parametrize(
    ("args", "error", "problem"),
    [
        (("ghost", "binance", API_KEY, SECRET), NotFoundError, "no user 'ghost'"),
        (("alice", "bin ance", API_KEY, SECRET), ValidationError, "invalid service"),
        (("alice", "", API_KEY, SECRET), ValidationError, "invalid service"),
        (("alice", "binance", "", SECRET), ValidationError, "api key is empty"),
        (("alice", "binance", "   ", SECRET), ValidationError, "blank"),
        (("alice", "binance", API_KEY, "  "), ValidationError, "blank"),
        (("alice", "binance", "k" * 20_000, SECRET), ValidationError, "over"),
    ],
)
def test_bad_input_writes_nothing(
    vault: Vault, app_engine: Engine, args: tuple[str, ...], error: type[Exception], problem: str
) -> None:
    before = snapshot(app_engine)
    with pytest.raises(error, match=problem) as caught:
        vault.add(*args)
    assert SECRET not in str(caught.value) and API_KEY not in str(caught.value)
    assert snapshot(app_engine) == before


def test_duplicate_needs_replace(vault: Vault) -> None:
    vault.add("alice", "binance", API_KEY, SECRET)
    with pytest.raises(ValidationError, match="already has a credential"):
        vault.add("alice", "binance", "new-key", "new-secret")
    vault.add("alice", "binance", "new-key", "new-secret", replace=True)
    assert vault.get("alice", "binance").ccxt_config() == {
        "apiKey": "new-key",
        "secret": "new-secret",
    }


def test_remove_erases_ciphertext_and_keeps_the_row(vault: Vault, app_engine: Engine) -> None:
    vault.add("alice", "binance", API_KEY, SECRET)
    vault.remove("alice", "binance")
    row = _credential(app_engine, "alice", "binance")
    assert row.deleted_at is not None and not row.is_active
    assert row.api_key_encrypted == b"" and row.api_secret_encrypted is None
    assert vault.list() == []
    with pytest.raises(NotFoundError, match="no credential for 'binance'"):
        vault.get("alice", "binance")
    with pytest.raises(NotFoundError):
        vault.remove("alice", "binance")
    vault.add("alice", "binance", API_KEY, SECRET)  # re-adding reuses the row
    assert vault.get("alice", "binance").ccxt_config()["apiKey"] == API_KEY


def test_wrong_master_secret_fails_and_changes_nothing(
    vault: Vault, app_engine: Engine, make_vault: Callable[..., Vault]
) -> None:
    vault.add("alice", "binance", API_KEY, SECRET)
    before = snapshot(app_engine)
    wrong = make_vault(OTHER_MASTER)
    for attempt in (
        lambda: wrong.unlock(),
        lambda: wrong.list(),
        lambda: wrong.get("alice", "binance"),
        lambda: wrong.add("bob", "kraken", API_KEY, SECRET),
        lambda: wrong.rotate_key(),
        lambda: wrong.verify(),
    ):
        with pytest.raises(VaultError, match="does not unlock vault key") as caught:
            attempt()
        assert "CRYPTOTRADING_MASTER_KEY" in caught.value.hint
        assert SECRET not in str(caught.value)
    assert snapshot(app_engine) == before


def test_tampered_ciphertext_is_detected(vault: Vault, app_engine: Engine) -> None:
    vault.add("alice", "binance", API_KEY, SECRET)
    row = _credential(app_engine, "alice", "binance")
    assert row.api_secret_encrypted is not None
    tampered = bytearray(row.api_secret_encrypted)
    tampered[-20] ^= 0x01
    with app_engine.begin() as connection:
        connection.execute(
            update(ApiCredential)
            .where(ApiCredential.id == row.id)
            .values(api_secret_encrypted=bytes(tampered))
        )
    with pytest.raises(VaultError, match="api_secret was altered or moved") as caught:
        vault.get("alice", "binance")
    assert "'binance'" in str(caught.value) and SECRET not in str(caught.value)
    with pytest.raises(VaultError):
        vault.verify()


def test_ciphertext_moved_to_another_row_or_field_does_not_decrypt(
    vault: Vault, app_engine: Engine
) -> None:
    vault.add("alice", "binance", API_KEY, SECRET)
    vault.add("bob", "binance", "bob-key-0123456789", "bob-secret-0123456789")
    vault.add("alice", "kraken", "kraken-key-0123456789", "kraken-secret-0123456789")
    alice = _credential(app_engine, "alice", "binance")
    bob = _credential(app_engine, "bob", "binance")
    kraken = _credential(app_engine, "alice", "kraken")
    with app_engine.begin() as connection:  # alice's binance blobs pasted into bob's row
        connection.execute(
            update(ApiCredential)
            .where(ApiCredential.id == bob.id)
            .values(
                api_key_encrypted=alice.api_key_encrypted,
                api_secret_encrypted=alice.api_secret_encrypted,
            )
        )
        connection.execute(  # alice's binance secret into her kraken row
            update(ApiCredential)
            .where(ApiCredential.id == kraken.id)
            .values(api_secret_encrypted=alice.api_secret_encrypted)
        )
        connection.execute(  # key and secret swapped inside alice's own row
            update(ApiCredential)
            .where(ApiCredential.id == alice.id)
            .values(
                api_key_encrypted=alice.api_secret_encrypted,
                api_secret_encrypted=alice.api_key_encrypted,
            )
        )
    for username, service in (("bob", "binance"), ("alice", "kraken"), ("alice", "binance")):
        with pytest.raises(VaultError, match="altered or moved"):
            vault.get(username, service)


def test_rotation_reencrypts_everything_and_retires_the_old_key(
    vault: Vault, app_engine: Engine, make_vault: Callable[..., Vault]
) -> None:
    vault.add("alice", "binance", API_KEY, SECRET)
    vault.add("bob", "kraken", "bob-key-0123456789", "bob-secret-0123456789", passphrase="pp")
    vault.add("bob", "okx", "removed-0123456789", "removed")
    vault.remove("bob", "okx")
    old_key = vault.unlock()
    old_blob = _credential(app_engine, "alice", "binance").api_secret_encrypted
    seen: list[tuple[int, int]] = []
    report = vault.rotate_key(progress=lambda done, total: seen.append((done, total)))
    assert report.retired_key_ids == [old_key] and report.credentials == 2
    assert seen == [(1, 2), (2, 2)]
    keys = {k.key_id: k for k in vault.data_keys()}
    assert keys[old_key].status == "retired" and keys[old_key].retired_at is not None
    assert keys[report.new_key_id].status == "active" and keys[report.new_key_id].credentials == 2
    row = _credential(app_engine, "alice", "binance")
    assert row.key_id == report.new_key_id and row.api_secret_encrypted != old_blob
    fresh = make_vault()  # a new process with the same master secret
    assert fresh.get("alice", "binance").ccxt_config() == {"apiKey": API_KEY, "secret": SECRET}
    assert fresh.get("bob", "kraken").ccxt_config()["password"] == "pp"
    assert fresh.verify() == 2
    # and once more: the previous key retires, exactly one key stays active
    second = fresh.rotate_key()
    statuses = [k.status for k in fresh.data_keys()]
    assert statuses.count("active") == 1 and len(statuses) == 3
    assert second.retired_key_ids == [report.new_key_id]


def test_rotation_to_a_new_master_secret(vault: Vault, make_vault: Callable[..., Vault]) -> None:
    vault.add("alice", "binance", API_KEY, SECRET)
    vault.rotate_key(new_master=OTHER_MASTER)
    assert vault.get("alice", "binance").ccxt_config()["secret"] == SECRET
    assert make_vault(OTHER_MASTER).get("alice", "binance").ccxt_config()["apiKey"] == API_KEY
    with pytest.raises(VaultError, match="does not unlock"):
        make_vault(MASTER).list()


def test_failed_rotation_changes_nothing(vault: Vault, app_engine: Engine) -> None:
    vault.add("alice", "binance", API_KEY, SECRET)
    vault.add("bob", "binance", API_KEY[::-1], SECRET[::-1])
    bob = _credential(app_engine, "bob", "binance")
    assert bob.api_key_encrypted is not None
    with app_engine.begin() as connection:
        connection.execute(
            update(ApiCredential)
            .where(ApiCredential.id == bob.id)
            .values(api_key_encrypted=bob.api_key_encrypted[:-1] + b"\x00")
        )
    before = snapshot(app_engine)
    with pytest.raises(VaultError, match="altered or moved"):
        vault.rotate_key()
    assert snapshot(app_engine) == before  # no new key row, nothing re-encrypted or retired


def test_first_use_creates_exactly_one_active_key(vault: Vault, app_engine: Engine) -> None:
    assert vault.unlock() is None and vault.data_keys() == []
    vault.add("alice", "binance", API_KEY, SECRET)
    vault.add("bob", "binance", API_KEY, SECRET)
    [key] = vault.data_keys()
    assert key.status == "active" and key.credentials == 2
    assert key.kdf == "argon2id" and key.algorithm == "AES-256-GCM"
    assert key.kdf_params["memory_cost_kib"] == 1024
    with Session(app_engine) as session:
        row = session.scalar(select(EncryptionKeyMetadata))
        assert row is not None and len(row.salt) == 16 and row.key_check is not None


def test_two_active_keys_are_refused(vault: Vault, app_engine: Engine) -> None:
    vault.add("alice", "binance", API_KEY, SECRET)
    with app_engine.begin() as connection:
        connection.execute(
            EncryptionKeyMetadata.__table__.insert().values(
                key_id="vk-intruder",
                algorithm="AES-256-GCM",
                kdf="argon2id",
                kdf_params={"time_cost": 1, "memory_cost_kib": 1024, "parallelism": 1},
                salt=b"0" * 16,
                key_check=b"x" * 40,
                status="active",
            )
        )
    with pytest.raises(VaultError, match="2 active keys") as caught:
        vault.add("bob", "binance", API_KEY, SECRET)
    assert "rotate-key" in caught.value.hint
    with Session(app_engine) as session:
        assert session.scalar(select(func.count()).select_from(ApiCredential)) == 1
    report = vault.rotate_key()  # the documented repair
    assert sorted(report.retired_key_ids)[1] == "vk-intruder"
    assert [k.status for k in vault.data_keys()].count("active") == 1
    vault.add("bob", "binance", API_KEY, SECRET)
    assert vault.verify() == 2


def test_concurrent_first_use_and_rotation_keep_one_active_key(
    vault: Vault, make_vault: Callable[..., Vault]
) -> None:
    services = [f"exchange{i}" for i in range(6)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            own = make_vault()  # one vault object per thread, like separate processes
            own.add("alice", services[index], API_KEY, SECRET)
            if index % 2:
                own.rotate_key()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(services))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    keys = vault.data_keys()
    assert [k.status for k in keys].count("active") == 1
    assert vault.verify() == len(services)
    assert {k.key_id for k in keys if k.credentials} == {
        k.key_id for k in keys if k.status == "active"
    }
