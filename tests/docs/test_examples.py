"""Every runnable example of README.md, CONTRIBUTING.md and docs/ runs, and every link
between the pages resolves, so the docs cannot drift from the code.

Each page runs in one fresh data dir, its blocks in page order (see session.py);
``python -m pytest tests/docs -n 0`` runs them all, about a minute on one core.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.markdown import LANGUAGES, MARKER, blocks, runnable_blocks
from tests.docs.session import PageSession, zygote
from tests.helpers import ROOT

GENERATED = {ROOT / "docs" / "cli.md"}
PAGES = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    *sorted(p for p in (ROOT / "docs").glob("*.md") if p not in GENERATED),
]
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.fixture(scope="module")
def client_bin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    with zygote(tmp_path_factory.mktemp("docs-zygote")) as directory:
        yield directory


#: Pages with at least one runnable block (CONTRIBUTING and performance.md have none).
RUNNABLE_PAGES = [page for page in PAGES if runnable_blocks(page)]


def test_most_pages_have_runnable_examples() -> None:
    assert len(RUNNABLE_PAGES) >= len(PAGES) - 2, [_page_id(p) for p in RUNNABLE_PAGES]


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=_page_id)
def test_runnable_examples_of_the_page_run(
    page: Path, client_bin: Path | None, tmp_path: Path
) -> None:
    found = runnable_blocks(page)
    session = PageSession(tmp_path, client_bin)
    try:
        for block in found:
            session.run(block)
    finally:
        session.close()


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_only_python_and_bash_blocks_are_marked_runnable(page: Path) -> None:
    for block in blocks(page):
        if block.runnable:
            assert block.language in LANGUAGES, f"{block.where()}: {MARKER} {block.language}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces -> '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    fenced = {b.line + i for b in blocks(page) for i in range(-1, b.code.count("\n") + 1)}
    lines = page.read_text(encoding="utf-8").splitlines()
    return {
        _slug(line.lstrip("#"))
        for number, line in enumerate(lines, start=1)
        if line.startswith("#") and number not in fenced
    }


@pytest.mark.parametrize("page", [*PAGES, *sorted(GENERATED)], ids=_page_id)
def test_links_between_pages_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto: ...
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{_page_id(page)}: link to missing {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{_page_id(page)}: no heading for {target}"


def test_the_readme_maps_every_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in PAGES[1:]:
        assert f"]({_page_id(page)}" in readme, f"README does not link {_page_id(page)}"
