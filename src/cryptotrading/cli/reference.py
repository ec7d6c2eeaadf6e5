"""Render the CLI reference (``docs/cli.md``) from the command tree itself.

``python -m cryptotrading.cli.reference > docs/cli.md`` regenerates it; a test fails
when the committed file and the commands drift apart.
"""

from __future__ import annotations

from typing import Any

import typer.main

from cryptotrading.cli import app

HEADER = (
    "# CLI reference\n\n"
    "Generated from the commands themselves by "
    "`python -m cryptotrading.cli.reference > docs/cli.md`; "
    "`tests/cli/test_docs.py` fails when it is stale.\n"
)


def _param_line(param: Any) -> str:
    if getattr(param, "param_type_name", "") == "argument":
        name = "`" + (param.name or "").upper() + "`"
        required = " (required)" if param.required else ""
    else:
        name = ", ".join(f"`{opt}`" for opt in param.opts)
        required = " (required)" if param.required else ""
    help_text = (getattr(param, "help", None) or "").strip()
    default = param.default
    shown = ""
    if default not in (None, False, (), []) and not callable(default):
        shown = f" [default: {default}]"
    return f"- {name}{required}: {help_text}{shown}".rstrip(": ")


def _render(command: Any, path: list[str], out: list[str]) -> None:
    commands = getattr(command, "commands", None)
    if path:
        level = "#" * min(len(path) + 1, 4)
        out.append(f"\n{level} `cryptotrading {' '.join(path)}`\n")
        help_text = (command.help or "").strip()
        if help_text:
            out.append(help_text)
        params = [
            p
            for p in command.params
            if p.name not in ("help", "install_completion", "show_completion")
        ]
        if params:
            out.append("")
            out.extend(_param_line(p) for p in params)
    if commands:
        for name in sorted(commands):
            _render(commands[name], [*path, name], out)


def render_reference() -> str:
    """The Markdown reference of every command and option."""
    root = typer.main.get_command(app)
    out = [HEADER, "\n## Global options\n"]
    out.extend(
        _param_line(p)
        for p in root.params
        if p.name not in ("help", "install_completion", "show_completion")
    )
    _render(root, [], out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
