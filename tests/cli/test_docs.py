"""The CLI reference in docs/cli.md matches the commands (regenerate it when this fails)."""

from __future__ import annotations

from cryptotrading.cli.reference import render_reference
from tests.conftest import ROOT


def test_cli_reference_is_current() -> None:
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == render_reference(), (
        "docs/cli.md is stale: python -m cryptotrading.cli.reference > docs/cli.md"
    )


def test_every_command_group_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    reference = render_reference()
    for line in reference.splitlines():
        if line.startswith("### `cryptotrading "):
            group = line.split()[2]
            assert f"cryptotrading {group}" in readme, f"README does not mention {group}"
