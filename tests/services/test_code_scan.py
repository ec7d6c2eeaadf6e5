"""Code metrics with ast, on a synthetic file and on our own source tree."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import cryptotrading
from cryptotrading.errors import ValidationError
from cryptotrading.models.code import CodeFile, CodeMetric, Issue
from cryptotrading.services import code_scan
from tests.helpers import count_rows

SOURCE_TREE = Path(cryptotrading.__file__).resolve().parent

KNOWN = '''\
"""A module with a hand-counted complexity of 9."""

# a comment line, not code


def f(x, y, z, E):
    if x and y or z:  # if +1, and +1, or +1
        return [i for i in x if i]  # comprehension +1, its filter +1
    for i in x:  # +1
        try:
            pass
        except E:  # +1
            pass
    return 1 if x else 2  # +1


class C:
    async def g(self):
        return None
'''


def test_analyse_known_source() -> None:
    result = code_scan.analyse_source("known.py", KNOWN.encode())
    assert result.complexity == 9 and result.max_function_complexity == 9
    assert (result.functions, result.classes) == (2, 1)
    assert result.lines_of_code == 13
    assert result.content_hash == hashlib.sha256(KNOWN.encode()).hexdigest()
    broken = code_scan.analyse_source("bad.py", b"def f(:\n")
    assert broken.error is not None and "line 1" in broken.error


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A snapshot of our own source tree (others edit the live one concurrently)."""
    target = tmp_path / "cryptotrading"
    shutil.copytree(SOURCE_TREE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_scan_own_tree_then_rescan_is_idempotent(app_engine: Engine, tree: Path) -> None:
    files = sorted(p for p in tree.rglob("*.py"))
    report = code_scan.scan_tree(app_engine, tree, threshold=40)
    assert report.new == len(files) > 50 and report.changed == report.unchanged == 0
    assert report.metrics_recorded == 5 * len(files)
    expected_issues = sum(1 for f in report.files if f.complexity > 40)
    assert 0 < report.issues_opened == expected_issues
    assert (
        count_rows(app_engine, CodeFile) == len(files)
        and count_rows(app_engine, Issue) == expected_issues
    )
    with Session(app_engine) as session:
        scanned = session.scalars(
            select(CodeFile).where(CodeFile.file_path == (tree / "errors.py").as_posix())
        ).one()
        data = (tree / "errors.py").read_bytes()
        assert scanned.content_hash == hashlib.sha256(data).hexdigest()
        assert scanned.last_analyzed_at is not None and scanned.language == "python"
        assert scanned.complexity_score == code_scan.analyse_source("x", data).complexity
        metric_types = set(
            session.scalars(select(CodeMetric.metric_type).where(CodeMetric.file_id == scanned.id))
        )
        assert metric_types == {
            "lines_of_code",
            "cyclomatic_complexity",
            "functions",
            "classes",
            "max_function_complexity",
        }
    again = code_scan.scan_tree(app_engine, tree, threshold=40)
    assert (again.new, again.changed, again.unchanged) == (0, 0, len(files))
    assert again.metrics_recorded == again.issues_opened == again.issues_resolved == 0
    assert count_rows(app_engine, Issue) == expected_issues
    assert count_rows(app_engine, CodeMetric) == 5 * len(files)
    assert len(code_scan.open_issues(app_engine, issue_type="high_complexity")) == expected_issues


def test_changes_resolve_issues_and_removed_files_are_soft_deleted(
    app_engine: Engine, tmp_path: Path
) -> None:
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / ".hidden" / "skip.py").write_text("x = 1\n")
    (root / "pkg" / "complex.py").write_text(KNOWN)
    (root / "simple.py").write_text("x = 1\n")
    (root / "broken.py").write_text("def f(:\n")
    first = code_scan.scan_tree(app_engine, root, threshold=5)
    assert first.new == 3 and first.issues_opened == 2
    assert {i.issue_type for i in code_scan.open_issues(app_engine)} == {
        "high_complexity",
        "syntax_error",
    }
    (root / "pkg" / "complex.py").write_text("def f():\n    return 1\n")
    (root / "broken.py").unlink()
    second = code_scan.scan_tree(app_engine, root, threshold=5)
    assert (second.changed, second.unchanged, second.removed) == (1, 1, 1)
    assert second.issues_resolved == 1 and second.metrics_recorded == 5
    assert [i.issue_type for i in code_scan.open_issues(app_engine)] == ["syntax_error"]
    with Session(app_engine) as session:
        gone = session.scalars(select(CodeFile).where(CodeFile.file_path.endswith("broken.py")))
        assert gone.one().deleted_at is not None
    (root / "pkg" / "complex.py").write_text(KNOWN)
    third = code_scan.scan_tree(app_engine, root, threshold=5)
    assert third.issues_opened == 1  # a new open issue; the resolved one stays resolved
    assert count_rows(app_engine, Issue) == 3


def test_scan_live_source_tree(app_engine: Engine) -> None:
    report = code_scan.scan_tree(app_engine, SOURCE_TREE, threshold=10_000)
    paths = {f.path for f in report.files}
    this_module = Path(code_scan.__file__).resolve()
    assert this_module.as_posix() in paths and len(paths) > 50
    assert report.issues_opened == 0 and report.total_lines > 5000


def test_bad_input_writes_nothing(app_engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a directory"):
        code_scan.scan_tree(app_engine, tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValidationError, match="Python file"):
        code_scan.scan_tree(app_engine, tmp_path / "notes.txt")
    with pytest.raises(ValidationError, match="threshold"):
        code_scan.scan_tree(app_engine, tmp_path, threshold=0)
    assert count_rows(app_engine, CodeFile) == 0
