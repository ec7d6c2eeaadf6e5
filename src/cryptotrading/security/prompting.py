"""Reading secrets from a terminal (hidden input) or from stdin, one per line --
never from the command line, where they would land in shell history and ``ps``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

import typer

from cryptotrading.errors import ValidationError


def read_secrets(
    names: Sequence[str], *, confirm: Sequence[str] = (), stream: IO[str] | None = None
) -> list[str]:
    """One value per name in *names*: prompted without echo on a terminal, otherwise
    read as consecutive lines of stdin. Names in *confirm* are asked twice (on stdin:
    the next line must repeat the value)."""
    stdin = stream or typer.get_text_stream("stdin")
    interactive = stdin.isatty()
    values = []
    for name in names:
        if interactive:
            value = typer.prompt(
                name, hide_input=True, confirmation_prompt=name in confirm, err=True
            )
        else:
            value = _line(stdin, name, names)
            if name in confirm and _line(stdin, f"{name} (repeated)", names) != value:
                raise ValidationError(
                    f"the two {name.lower()} lines on stdin differ",
                    hint="Give the value, then the same value again on the next line.",
                )
        values.append(str(value))
    return values


def _line(stdin: IO[str], what: str, names: Sequence[str]) -> str:
    try:
        line = stdin.readline()
    except UnicodeDecodeError:
        raise ValidationError(
            f"the {what.lower()} on stdin is not UTF-8 text",
            hint=f"Give one UTF-8 line per value on stdin: {', '.join(names)}.",
        ) from None
    if not line:
        raise ValidationError(
            f"stdin ended before the {what.lower()}",
            hint=f"Give one value per line on stdin: {', '.join(names)}.",
        )
    return line.rstrip("\r\n")
