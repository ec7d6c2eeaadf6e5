"""Fenced code blocks of the Markdown docs, and which of them are runnable.

A block is runnable when its info string is ``python runnable`` or ``bash runnable``
(GitHub highlights by the first word only, so readers see ordinary code). See
CONTRIBUTING.md, "Runnable examples".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MARKER = "runnable"
LANGUAGES = ("python", "bash")
_FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its page, first code line (1-based), info words and code."""

    page: Path
    line: int
    info: tuple[str, ...]
    code: str

    @property
    def language(self) -> str:
        return self.info[0] if self.info else ""

    @property
    def runnable(self) -> bool:
        return MARKER in self.info[1:]

    def where(self) -> str:
        return f"{self.page.name}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of *page*, in order; indented fences (in lists) are dedented."""
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        index += 1
        start = index + 1
        while index < len(lines):
            closing = _FENCE.match(lines[index])
            if (
                closing is not None
                and closing["fence"].startswith(fence[0])
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index])
            index += 1
        index += 1
        info = tuple(opening["info"].split())
        found.append(Block(page, start, info, "\n".join(body) + "\n"))
    return found


def runnable_blocks(page: Path) -> list[Block]:
    """The blocks of *page* the docs test executes, in page order."""
    return [block for block in blocks(page) if block.runnable]
