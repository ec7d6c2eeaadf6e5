"""AES-256-GCM sealing and Argon2id derivation, without a database."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptotrading.errors import ConfigurationError
from cryptotrading.security import crypto
from cryptotrading.security.crypto import KdfParams, SealError, open_sealed, seal

KEY = os.urandom(32)
keys = st.binary(min_size=32, max_size=32)
aads = st.binary(max_size=256)


@given(plaintext=st.binary(max_size=4096), key=keys, aad=aads)
@settings(max_examples=200, deadline=None)
def test_round_trip_of_arbitrary_bytes(plaintext: bytes, key: bytes, aad: bytes) -> None:
    sealed = seal(key, plaintext, aad)
    assert len(sealed) == len(plaintext) + crypto.OVERHEAD
    assert open_sealed(key, sealed, aad) == plaintext


@given(secret=st.text(max_size=512))
@settings(max_examples=200, deadline=None)
def test_round_trip_of_arbitrary_text_secrets(secret: str) -> None:
    aad = crypto.associated_data("api_credentials", 1, "binance", "api_secret", "vk-1")
    assert open_sealed(KEY, seal(KEY, secret.encode(), aad), aad).decode() == secret


@given(plaintext=st.binary(min_size=1, max_size=256), data=st.data())
@settings(max_examples=200, deadline=None)
def test_any_altered_byte_is_rejected(plaintext: bytes, data: st.DataObject) -> None:
    sealed = bytearray(seal(KEY, plaintext, b"row"))
    index = data.draw(st.integers(0, len(sealed) - 1))
    flip = data.draw(st.integers(1, 255))
    sealed[index] ^= flip
    with pytest.raises(SealError):
        open_sealed(KEY, bytes(sealed), b"row")


@given(plaintext=st.binary(max_size=256), other=keys)
@settings(max_examples=100, deadline=None)
def test_wrong_key_is_rejected(plaintext: bytes, other: bytes) -> None:
    if other == KEY:
        return
    with pytest.raises(SealError):
        open_sealed(other, seal(KEY, plaintext, b"row"), b"row")


@given(aad=aads, other=aads)
@settings(max_examples=100, deadline=None)
def test_other_associated_data_is_rejected(aad: bytes, other: bytes) -> None:
    sealed = seal(KEY, b"secret", aad)
    if other != aad:
        with pytest.raises(SealError):
            open_sealed(KEY, sealed, other)


def test_truncated_and_foreign_formats_are_rejected() -> None:
    sealed = seal(KEY, b"secret", b"row")
    for bad in (b"", sealed[: crypto.OVERHEAD - 1], b"\x02" + sealed[1:], sealed[:-1]):
        with pytest.raises(SealError):
            open_sealed(KEY, bad, b"row")


def test_every_encryption_uses_a_fresh_nonce() -> None:
    sealed = [seal(KEY, b"the same secret", b"row") for _ in range(20_000)]
    nonces = {crypto.nonce_of(value) for value in sealed}
    assert len(nonces) == len(sealed)
    assert len(set(sealed)) == len(sealed)  # same plaintext, never the same bytes


@given(
    parts=st.lists(st.one_of(st.text(max_size=8), st.integers()), max_size=4),
    other=st.lists(st.one_of(st.text(max_size=8), st.integers()), max_size=4),
)
def test_associated_data_is_unambiguous(parts: list[str | int], other: list[str | int]) -> None:
    if parts != other:
        assert crypto.associated_data(*parts) != crypto.associated_data(*other)


def test_derivation_is_deterministic_and_depends_on_secret_salt_and_params() -> None:
    params = KdfParams(time_cost=1, memory_cost_kib=1024, parallelism=1)
    salt = crypto.new_salt()
    key = crypto.derive_key(b"master secret 0123", salt, params)
    assert len(key) == 32
    assert crypto.derive_key(b"master secret 0123", salt, params) == key
    assert crypto.derive_key(b"master secret 0124", salt, params) != key
    assert crypto.derive_key(b"master secret 0123", crypto.new_salt(), params) != key
    assert crypto.derive_key(b"master secret 0123", salt, KdfParams(2, 1024, 1)) != key


def test_kdf_params_round_trip_and_validation() -> None:
    params = KdfParams()
    assert (params.time_cost, params.memory_cost_kib, params.parallelism) == (3, 65536, 4)
    assert KdfParams.from_dict(params.as_dict()) == params
    for bad in (
        {"time_cost": 0},
        {"time_cost": 65},
        {"parallelism": 0},
        {"memory_cost_kib": 8 * 1024 * 1024},
    ):
        with pytest.raises(ConfigurationError):
            KdfParams(**bad)
    with pytest.raises(ConfigurationError):
        KdfParams(memory_cost_kib=16, parallelism=4)
    with pytest.raises(ConfigurationError, match="KDF parameters"):
        KdfParams.from_dict({"time_cost": "x"})
