"""Fuzz ``models``: names, versions, JSON metrics/parameters/features, artifacts,
predicted values at the edges of float64 and prediction times."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as s
from tests.fuzz.harness import SQLITE_ONLY, Fuzzer, fuzz_settings, options, write

pytestmark = pytest.mark.fuzz

REGISTER = s.variants(
    {
        "name": "m2",
        "version": "1.0.0",
        "framework": None,
        "artifact": None,
        "sha256": None,
        "metrics": '{"mae": 1.5}',
        "params": None,
        "description": None,
    },
    {
        "name": s.any_text,
        "version": st.one_of(st.sampled_from(["1.0", "01.0.0", "1.0.0-rc.1+b", "v1"]), s.any_text),
        "framework": s.maybe(s.any_text),
        "artifact": s.maybe(st.one_of(st.just("ARTIFACT"), s.any_text)),
        "sha256": s.maybe(st.one_of(st.just("0" * 64), s.any_text)),
        "metrics": s.maybe(s.json_text),
        "params": s.maybe(s.json_text),
        "description": s.maybe(s.any_text),
    },
)


@fuzz_settings()
@given(values=REGISTER, content=st.binary(max_size=64))
def test_register(fuzzer: Fuzzer, values: dict[str, str | None], content: bytes) -> None:
    name, version = values.pop("name") or "", values.pop("version") or ""
    if version == "1.0.0":  # a fresh version each time, so valid examples succeed
        fuzzer.facts["n"] = str(int(fuzzer.facts.get("n", "0")) + 1)
        version = f"1.0.{fuzzer.facts['n']}"
    if values["artifact"] == "ARTIFACT":
        values["artifact"] = str(write(fuzzer.workdir, "model.bin", content))
    fuzzer.run(["models", "register", "--json", *options(**values), "--", name, version])


PREDICT = s.variants(
    {
        "name": "m",
        "value": "101.5",
        "version": None,
        "symbol": "BTC/USDT",
        "type": None,
        "confidence": None,
        "target": "2021-01-01T05:00:00Z",
        "at": "2021-01-01T01:00:00Z",
        "features": None,
    },
    {
        "name": s.any_text,
        "value": s.numbers,
        "version": s.maybe(s.any_text),
        "symbol": s.maybe(s.symbols),
        "type": s.maybe(st.one_of(st.sampled_from(["return", "direction"]), s.any_text)),
        "confidence": s.maybe(s.numbers),
        "target": s.maybe(s.times),
        "at": s.maybe(s.times),
        "features": s.maybe(s.json_text),
    },
)


@SQLITE_ONLY
@fuzz_settings()
@given(values=PREDICT, resolve=st.booleans())
def test_predict_resolve_evaluate(
    seeded: Fuzzer, values: dict[str, str | None], resolve: bool
) -> None:
    if "production" not in seeded.facts:
        seeded.ok(["models", "promote", "m", "1.0.0"])
        seeded.facts["production"] = "1"
    name = values.pop("name") or ""
    seeded.run(["models", "predict", "--json", *options(**values), "--", name])
    if resolve:
        seeded.run(["models", "resolve", "--json", "--timeframe=1h", "--", name])
        seeded.run(["models", "evaluate", "--json", "--", name])


@SQLITE_ONLY
@fuzz_settings()
@given(
    command=st.sampled_from(["promote", "stage", "verify", "list", "evaluate", "resolve"]),
    name=st.one_of(st.just("m"), s.any_text),
    version=st.one_of(st.just("1.0.0"), s.any_text),
    stage=st.one_of(st.sampled_from(["staging", "production", "archived"]), s.any_text),
    frequency=s.maybe(s.any_text),
)
def test_name_commands(
    seeded: Fuzzer, command: str, name: str, version: str, stage: str, frequency: str | None
) -> None:
    positional = {
        "promote": [name, version],
        "stage": [name, version, stage],
        "verify": [name, version],
        "list": [name],
        "evaluate": [name],
        "resolve": [name],
    }[command]
    extra: list[str] = []
    if command in ("evaluate", "resolve"):
        extra = options(version=None if version == "1.0.0" else version)
    if command == "resolve":
        extra += options(timeframe=frequency)
    seeded.run(["models", command, "--json", *extra, "--", *positional])


def test_artifact_path_is_not_read_when_missing(fuzzer: Fuzzer, tmp_path: Path) -> None:
    """A missing artifact file is an error naming it, not a traceback."""
    args = ["models", "register", "x", "1.0.0", f"--artifact={tmp_path / 'none.bin'}"]
    fuzzer.run([*args, "--sha256=" + "0" * 64])
