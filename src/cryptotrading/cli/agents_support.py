"""What the ``agents`` command modules share: the app store's engine with the queue
policy of the settings, JSON documents given inline or read from a file (``-``:
stdin), and table cells that show any stored text safely."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine

from cryptotrading.agents import QueuePolicy
from cryptotrading.cli._common import open_stores
from cryptotrading.cli._format import json_object_option
from cryptotrading.cli._output import console, emit
from cryptotrading.errors import NotFoundError, ValidationError
from cryptotrading.outputs import file_kind
from cryptotrading.settings import Settings

#: Largest JSON file read (a payload file may be up to 4x the payload limit: indentation).
MAX_FILE_BYTES = 16 * 1024 * 1024
#: Longest table cell; the JSON output is never shortened.
CELL_CHARS = 200

AgentArgument = typer.Argument(..., help="Agent id.")
MessageArgument = typer.Argument(..., help="Message id (from send, receive or messages).")
ReceiptOption = typer.Option(
    None, "--receipt", help="The receipt of the delivery (from receive); default: the current."
)


@dataclass(frozen=True)
class AgentsEnv:
    """The app store's engine and the agent settings of the configured layout."""

    engine: Engine
    settings: Settings
    policy: QueuePolicy


def open_agents(ctx: typer.Context) -> AgentsEnv:
    """The engine (closed with the command), settings and queue policy."""
    stores = open_stores(ctx)
    settings = stores.settings
    return AgentsEnv(stores.engine(stores.app), settings, QueuePolicy.from_settings(settings))


# --------------------------------------------------------------------------- JSON input


def _shown(path: str) -> str:
    return repr(path if len(path) <= 80 else path[:77] + "...")


def _file_bytes(path: str, option: str, limit: int) -> bytes:
    """At most *limit* + 1 bytes of the regular file *path* (or of stdin for ``-``)."""
    hint = f"Give {option} the path of a regular file holding a JSON object, or '-' for stdin."
    if path == "-":
        data: bytes = typer.get_binary_stream("stdin").read(limit + 1)
        return data
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise NotFoundError(f"{option}: no such file {_shown(path)}", hint=hint) from None
    except (OSError, ValueError) as exc:  # permission, too long, a loop, a NUL byte
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValidationError(
            f"{option}: cannot open {_shown(path)}: {reason}", hint=hint
        ) from None
    if not stat.S_ISREG(mode):
        raise ValidationError(
            f"{option}: {_shown(path)} is {file_kind(mode)}, not a regular file", hint=hint
        )
    try:
        with Path(path).open("rb") as handle:
            return handle.read(limit + 1)
    except OSError as exc:
        raise ValidationError(
            f"{option}: cannot read {_shown(path)}: {exc.strerror or exc}", hint=hint
        ) from None


def json_file(path: str, option: str, *, limit: int = MAX_FILE_BYTES) -> dict[str, Any]:
    """The JSON object in the file *path* (``-``: stdin), UTF-8, at most *limit* bytes."""
    where = "stdin" if path == "-" else _shown(path)
    hint = f"Put one JSON object (UTF-8) in {where}."
    data = _file_bytes(path, option, limit)
    if len(data) > limit:
        raise ValidationError(f"{option}: {where} is larger than {limit} bytes", hint=hint)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(f"{option}: {where} is not UTF-8 text", hint=hint) from None
    try:
        value = json_object_option(text, f"{option} {where}")
    except ValidationError as exc:
        raise ValidationError(exc.message, hint=hint) from None
    assert value is not None  # text is not None
    return value


def json_input(
    text: str | None,
    path: str | None,
    *,
    option: str,
    file_option: str,
    limit: int = MAX_FILE_BYTES,
    required: bool = False,
) -> dict[str, Any] | None:
    """The JSON object given inline as *option* or in the file of *file_option*."""
    if text is not None and path is not None:
        raise ValidationError(
            f"give {option} or {file_option}, not both", hint="Drop one of the two options."
        )
    if path is not None:
        return json_file(path, file_option, limit=limit)
    value = json_object_option(text, option)
    if value is None and required:
        raise ValidationError(
            f"give {option} JSON or {file_option} PATH",
            hint=f"e.g. {option} '{{\"key\": 1}}', or {file_option} - to read stdin.",
        )
    return value


# ------------------------------------------------------------------------------- output


def cell(value: Any) -> str:
    """*value* for a table cell: JSON for documents, times to the second, at most
    :data:`CELL_CHARS` characters, undecodable characters spelled as escapes."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, default=str)
    elif isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
    else:
        text = str(value)
    if len(text) > CELL_CHARS:
        text = text[: CELL_CHARS - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def moment(value: datetime | None) -> str:
    """A time for a message line: ``2021-07-10 12:00:00 UTC`` (stored times are UTC)."""
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


def safe(text: str) -> str:
    """*text* for ``console.print``: markup escaped, lone surrogates spelled as escapes."""
    return escape(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str = ""
) -> None:
    """A table like :func:`~cryptotrading.cli._output.print_table`, but every cell is
    plain text (stored text is shown, never read as markup) and long values wrap
    instead of being cut (ids and receipts stay whole on a narrow terminal)."""
    shown = [[Text(cell(value)) for value in row] for row in rows]
    grid = Table(title=Text(cell(title)), caption=None if shown else empty or None)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in shown:
        grid.add_row(*row)
    console.print(grid)


def record(title: str, data: Mapping[str, Any]) -> None:
    """One record as a ``field | value`` table."""
    table(title, ["field", "value"], list(data.items()))


def emit_row(as_json: bool, title: str, data: Mapping[str, Any]) -> None:
    """*data* as JSON, or as the record table *title*."""
    emit(as_json, data, lambda: record(title, data))


def say(as_json: bool, data: Any, line: str) -> None:
    """*data* as JSON, or the one-line message *line* (shown, never read as markup)."""
    emit(as_json, data, lambda: console.print(safe(line)))
