"""Category 9 -- code metrics of a Python source tree, with the stdlib :mod:`ast`.

:func:`scan_tree` parses every ``*.py`` file under a directory and, in one
transaction:

* upserts ``code_files`` (absolute path, lines of code, complexity, sha256
  ``content_hash``, ``last_analyzed_at``); files gone from the tree are soft-deleted;
* records ``code_metrics`` rows (``lines_of_code``, ``cyclomatic_complexity``,
  ``functions``, ``classes``, ``max_function_complexity``) for new and changed files
  only -- an unchanged hash adds no rows, so repeated scans do not grow the table;
* opens an ``issues`` row (``high_complexity``, or ``syntax_error`` for files that do
  not parse) unless an open issue of that type exists for the file, and resolves
  open ones the file no longer deserves.

Complexity is McCabe's estimate: 1 + decision points (``if``/``elif``, loops,
``except``, conditional expressions, ``assert``, ``match`` cases, comprehension
loops and filters, and each extra operand of ``and``/``or``).
"""

from __future__ import annotations

import ast
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, select

from cryptotrading.common.checks import integer
from cryptotrading.common.clock import utcnow
from cryptotrading.db import unit_of_work
from cryptotrading.errors import ValidationError
from cryptotrading.models.code import CodeFile, CodeMetric, Issue
from cryptotrading.services._common import WHERE, read_session, serialise

DEFAULT_THRESHOLD = 50
SKIPPED_DIRS = frozenset({"__pycache__", ".venv", "venv", "node_modules", "build", "dist"})
HIGH_COMPLEXITY = "high_complexity"
SYNTAX_ERROR = "syntax_error"
_BRANCHES = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.IfExp,
    ast.ExceptHandler,
    ast.Assert,
    ast.match_case,
)


@dataclass(frozen=True)
class FileAnalysis:
    """What the parser found in one file (``error`` set when it does not parse)."""

    path: str
    content_hash: str
    lines_of_code: int
    complexity: int
    functions: int
    classes: int
    max_function_complexity: int
    error: str | None = None

    def metrics(self) -> dict[str, float]:
        return {
            "lines_of_code": self.lines_of_code,
            "cyclomatic_complexity": self.complexity,
            "functions": self.functions,
            "classes": self.classes,
            "max_function_complexity": self.max_function_complexity,
        }


@dataclass
class ScanReport:
    """Counts of one scan, and the analysed files."""

    root: str
    threshold: int
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    metrics_recorded: int = 0
    issues_opened: int = 0
    issues_resolved: int = 0
    files: list[FileAnalysis] = field(default_factory=list)

    @property
    def total_lines(self) -> int:
        return sum(f.lines_of_code for f in self.files)


def decision_points(node: ast.AST) -> int:
    """Decision points in *node* and everything below it."""
    points = 0
    for child in ast.walk(node):
        if isinstance(child, _BRANCHES):
            points += 1
        elif isinstance(child, ast.BoolOp):
            points += len(child.values) - 1
        elif isinstance(child, ast.comprehension):
            points += 1 + len(child.ifs)
    return points


def lines_of_code(source: str) -> int:
    """Lines that are neither blank nor only a comment."""
    return sum(
        1 for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )


def analyse_source(path: str, data: bytes) -> FileAnalysis:
    """Metrics of one file's bytes."""
    digest = hashlib.sha256(data).hexdigest()
    source = data.decode("utf-8", errors="replace")
    loc = lines_of_code(source)
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
        return FileAnalysis(
            path, digest, loc, 1, 0, 0, 0, error=f"{exc.__class__.__name__}{where}: {exc}"
        )
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    classes = sum(1 for n in ast.walk(tree) if isinstance(n, ast.ClassDef))
    per_function = [1 + decision_points(f) for f in functions]
    return FileAnalysis(
        path=path,
        content_hash=digest,
        lines_of_code=loc,
        complexity=1 + decision_points(tree),
        functions=len(functions),
        classes=classes,
        max_function_complexity=max(per_function, default=0),
    )


def python_files(root: Path) -> Iterator[Path]:
    """``*.py`` files under *root* (sorted), skipping hidden, cache and venv folders."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts[:-1]
        if not any(p in SKIPPED_DIRS or p.startswith(".") for p in parts):
            yield path


def stored_path(path: Path) -> str:
    """*path* as stored text: a name that is not UTF-8 (undecodable bytes) keeps
    its bytes as ``\\xNN`` escapes, so every file gets a stable, storable path."""
    return os.fsencode(path.as_posix()).decode("utf-8", errors="backslashreplace")


def scan_tree(
    engine: Engine, root: Path | str, *, threshold: int = DEFAULT_THRESHOLD
) -> ScanReport:
    """Analyse the Python files under *root* and store files, metrics and issues."""
    threshold = integer(threshold, "complexity threshold", low=1)
    base = Path(root).expanduser().resolve()
    if not base.exists() or (base.is_file() and base.suffix != ".py"):
        raise ValidationError(
            f"{root} is not a directory or Python file",
            hint="Give the path of a source tree (e.g. src/cryptotrading) or a .py file.",
        )
    report = ScanReport(root=stored_path(base), threshold=threshold)
    for path in python_files(base):
        try:
            data = path.read_bytes()
        except OSError:
            continue  # vanished or unreadable since listing: skipped, not fatal
        report.files.append(analyse_source(stored_path(path), data))
    now = utcnow()
    with unit_of_work(engine, WHERE) as session:
        serialise(session, "code_scan")  # concurrent scans: no duplicate files or issues
        prefix = stored_path(base)
        prefix = prefix if base.is_file() else prefix.rstrip("/") + "/"
        column = CodeFile.file_path
        in_scope = (
            column == prefix if base.is_file() else column.startswith(prefix, autoescape=True)
        )
        known = {row.file_path: row for row in session.scalars(select(CodeFile).where(in_scope))}
        open_issues = {
            (issue.file_id, issue.issue_type): issue
            for issue in session.scalars(
                select(Issue).where(
                    Issue.status == "open",
                    Issue.deleted_at.is_(None),
                    Issue.file_id.in_([row.id for row in known.values()]),
                )
            )
        }
        for analysis in report.files:
            row = known.get(analysis.path)
            if row is None:
                row = CodeFile(file_path=analysis.path, language="python")
                session.add(row)
                report.new += 1
            elif row.content_hash != analysis.content_hash:
                report.changed += 1
            else:
                report.unchanged += 1
            fresh = row.content_hash != analysis.content_hash
            row.lines_of_code = analysis.lines_of_code
            row.complexity_score = float(analysis.complexity)
            row.content_hash = analysis.content_hash
            row.last_analyzed_at = now
            row.deleted_at = None
            session.flush()
            if fresh:
                for metric, value in analysis.metrics().items():
                    session.add(
                        CodeMetric(
                            file_id=row.id,
                            metric_type=metric,
                            metric_value=float(value),
                            details={"content_hash": analysis.content_hash},
                            measured_at=now,
                        )
                    )
                    report.metrics_recorded += 1
            wanted = _wanted_issues(analysis, threshold)
            for issue_type in (HIGH_COMPLEXITY, SYNTAX_ERROR):
                existing = open_issues.get((row.id, issue_type))
                if issue_type in wanted and existing is None:
                    severity, title, description = wanted[issue_type]
                    session.add(
                        Issue(
                            file_id=row.id,
                            file_path=analysis.path,
                            issue_type=issue_type,
                            severity=severity,
                            status="open",
                            title=title,
                            description=description,
                        )
                    )
                    report.issues_opened += 1
                elif issue_type not in wanted and existing is not None:
                    existing.status = "resolved"
                    existing.resolved_at = now
                    report.issues_resolved += 1
        seen = {analysis.path for analysis in report.files}
        for known_path, row in known.items():
            if known_path not in seen and row.deleted_at is None:
                row.deleted_at = now
                report.removed += 1
    return report


def _wanted_issues(analysis: FileAnalysis, threshold: int) -> dict[str, tuple[str, str, str]]:
    """Issue type -> (severity, title, description) the file deserves now."""
    name = Path(analysis.path).name
    if analysis.error is not None:
        return {SYNTAX_ERROR: ("high", f"{name} does not parse", analysis.error)}
    if analysis.complexity > threshold:
        severity = "high" if analysis.complexity > 2 * threshold else "medium"
        return {
            HIGH_COMPLEXITY: (
                severity,
                f"{name}: cyclomatic complexity {analysis.complexity} > {threshold}",
                f"{analysis.functions} functions, most complex function "
                f"{analysis.max_function_complexity}; split the module or simplify branches.",
            )
        }
    return {}


def open_issues(engine: Engine, *, issue_type: str | None = None) -> list[Issue]:
    """Open issues, most severe first."""
    query = select(Issue).where(Issue.status == "open", Issue.deleted_at.is_(None))
    if issue_type is not None:
        query = query.where(Issue.issue_type == issue_type)
    with read_session(engine) as session:
        return list(session.scalars(query.order_by(Issue.severity, Issue.file_path)))
