"""Imports point down only: every ``cryptotrading`` import of every module under
``src/cryptotrading`` is checked against one layer table (:data:`LAYERS`).

The rule: a module may import its own package and the packages of lower rows; the
packages of one row may not import each other, except the pairs in
:data:`SIDEWAYS`. ``cryptotrading/__init__.py`` (the public facade) is exempt as an
importer and, being at the top, may be imported by nobody. Imports are read with
:mod:`ast` (lazy imports inside functions and ``TYPE_CHECKING`` blocks count too),
nothing is executed. A new top-level package must be placed in the table first.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cryptotrading"

#: The layers, bottom to top: (name, top-level packages/modules of cryptotrading).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation: errors", ("errors",)),
    ("foundation: helpers", ("common", "settings", "outputs")),
    ("foundation: db", ("db",)),
    ("foundation: models", ("models",)),
    ("foundation: migrations", ("migrations",)),
    ("stores", ("stores",)),
    (
        "domains",
        (
            "market",
            "security",
            "trading",
            "intelligence",
            "services",
            "agents",
            "memory",
            "factors",
        ),
    ),
    ("operations", ("ops",)),
    ("interfaces", ("cli", "api", "mcp")),
)
#: Imports allowed between packages of one row (importer, imported).
SIDEWAYS: frozenset[tuple[str, str]] = frozenset({("intelligence", "trading")})
FACADE = "__init__"

RANK = {part: rank for rank, (_, parts) in enumerate(LAYERS) for part in parts}
LAYER_NAME = {part: name for name, parts in LAYERS for part in parts}


@dataclass(frozen=True)
class Import:
    """One ``cryptotrading`` import: where it stands and what it names."""

    module: str  # dotted name of the importing module
    line: int
    target: str  # dotted name of the imported module

    @property
    def source_part(self) -> str:
        return _part(self.module)

    @property
    def target_part(self) -> str:
        return _part(self.target)


def _part(dotted: str) -> str:
    """The top-level part of ``cryptotrading.<part>...`` (``__init__`` for the facade)."""
    pieces = dotted.split(".")
    return pieces[1] if len(pieces) > 1 else FACADE


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    """Whether *dotted* (``cryptotrading.x.y``) is a module or package of the tree."""
    base = PACKAGE.parent.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def targets_of(node: ast.AST, package: str) -> list[str]:
    """The dotted modules an import statement in *package* names (relative resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        pieces = package.split(".")
        anchor = pieces[: len(pieces) - node.level + 1]
        base = ".".join([*anchor, *([node.module] if node.module else [])])
    else:
        base = node.module or ""
    # `from cryptotrading import migrations` imports the subpackage itself.
    submodules = [f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}")]
    return submodules if len(submodules) == len(node.names) else [base, *submodules]


def imports_of(path: Path) -> list[Import]:
    """The ``cryptotrading`` imports of the module at *path*."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        Import(module, node.lineno, target)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for target in targets_of(node, package)
        if target == "cryptotrading" or target.startswith("cryptotrading.")
    ]


def all_imports() -> list[Import]:
    return [found for path in sorted(PACKAGE.rglob("*.py")) for found in imports_of(path)]


def violation(found: Import) -> str | None:
    """Why *found* breaks the layer rule, or None when it points down (or stays home)."""
    source, target = found.source_part, found.target_part
    if source in (FACADE, target):
        return None
    where = f"{found.module}:{found.line} imports {found.target}"
    if target == FACADE:
        return f"{where}: the public facade `cryptotrading` is above every layer"
    if RANK[target] < RANK[source] or (source, target) in SIDEWAYS:
        return None
    relation = "the same layer" if RANK[target] == RANK[source] else "a layer above it"
    return (
        f"{where}: {source} (layer '{LAYER_NAME[source]}') may not import {target} "
        f"(layer '{LAYER_NAME[target]}', {relation})"
    )


def test_every_package_has_a_layer() -> None:
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    parts = {p for p in parts if not p.startswith((".", "_")) and p != "py"}
    parts = {p for p in parts if _is_module(f"cryptotrading.{p}")}
    missing = sorted(parts - RANK.keys())
    assert not missing, f"place these in LAYERS (tests/test_layers.py): {missing}"


def test_imports_point_down_only() -> None:
    problems = [text for found in all_imports() if (text := violation(found))]
    assert not problems, "imports that do not point down:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "target", "allowed"),
    [
        ("cryptotrading.stores", "cryptotrading.ops.monitoring", False),
        ("cryptotrading.market.archived", "cryptotrading.ops.archive", False),
        ("cryptotrading.ops.health", "cryptotrading", False),
        ("cryptotrading.market.store", "cryptotrading.trading.money", False),
        ("cryptotrading.trading.orders", "cryptotrading.intelligence.views", False),
        ("cryptotrading.db.base", "cryptotrading.common.clock", True),
        ("cryptotrading.intelligence.views", "cryptotrading.trading.money", True),
        ("cryptotrading.cli.db", "cryptotrading.migrations", True),
        ("cryptotrading", "cryptotrading.cli", True),
    ],
)
def test_the_rule(module: str, target: str, allowed: bool) -> None:
    """The check itself: the imports issue 11 found (first two) are refused."""
    assert (violation(Import(module, 1, target)) is None) is allowed


@pytest.mark.parametrize(
    ("statement", "package", "targets"),
    [
        ("from . import clock", "cryptotrading.common", ["cryptotrading.common.clock"]),
        ("from ..ops import check", "cryptotrading.market", ["cryptotrading.ops.check"]),
        ("from .views import row_view", "cryptotrading.common", ["cryptotrading.common.views"]),
        ("from cryptotrading import migrations", "cryptotrading.ops", ["cryptotrading.migrations"]),
        ("from cryptotrading import __version__", "cryptotrading.ops", ["cryptotrading"]),
        ("import cryptotrading.ops.check as c", "cryptotrading.cli", ["cryptotrading.ops.check"]),
    ],
)
def test_imports_are_resolved(statement: str, package: str, targets: list[str]) -> None:
    """Relative imports and ``from cryptotrading import <subpackage>`` are resolved."""
    (node,) = ast.parse(statement).body
    assert targets_of(node, package) == targets
