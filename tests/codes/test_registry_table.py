"""The registry table (``mailroom replies --registry``, ``docs/registry.md``): every code of the
IANA registry has a row, and every row has a situation shown by a real test, or a reason why no
server can meet the code, or (for the codes of the issues being built now only) says so."""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailroom.codes.catalogue import CATALOGUE
from mailroom.codes.coverage import (
    IN_PROGRESS,
    NOT_MET,
    TESTS,
    registry_markdown,
    registry_rows,
)
from mailroom.codes.registry import enhanced_code_entries
from mailroom.codes.reports import REPORTS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "registry.md"
ROWS = {row.code: row for row in registry_rows()}
# The codes that may say "in progress": those of an issue being built now, until it lands.
# None now (issues 15 and 16, email authentication and transport security, have landed).
ALLOWED_IN_PROGRESS: set[str] = set()


def test_one_row_per_registry_code() -> None:
    assert list(ROWS) == list(enhanced_code_entries())
    assert len(ROWS) == 81
    for table in (NOT_MET, TESTS, IN_PROGRESS):
        assert set(table) <= set(ROWS), set(table) - set(ROWS)


@pytest.mark.parametrize("code", list(ROWS))
def test_every_code_has_a_situation_or_a_reason(code: str) -> None:
    row = ROWS[code]
    if row.in_progress is not None:
        assert code in ALLOWED_IN_PROGRESS, f"{code}: no issue in progress brings this code"
        return
    if row.sent:
        assert row.tests, f"{code}: sent as {row.replies + row.reports} but no test shows it"
        assert row.reason is None, f"{code}: sent, yet a reason says no server can meet it"
    else:
        assert row.reason, f"{code}: neither a situation nor a reason"
        assert re.search(r"RFC \d+", row.reason), f"{code}: the reason names no RFC"
        assert not row.tests, f"{code}: tests named for a code mailroom does not send"


def _code_strings(code: str) -> list[str]:
    return [code.replace("X", str(c), 1) for c in (2, 4, 5)]


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text("utf-8"))


def _find(node_id: str) -> str:
    """The source of the test a node id names; fails when there is none."""
    path_text, *names = node_id.split("::")
    path = ROOT / path_text
    assert path.is_file(), f"{node_id}: no file {path_text}"
    assert names, f"{node_id}: no test named"
    scope: ast.AST = _tree(path)
    for name in names:
        found = None
        for child in ast.iter_child_nodes(scope):
            if (
                isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and child.name == name
            ):
                found = child
        assert found is not None, f"{node_id}: {name} not found in {path_text}"
        scope = found
    assert isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef), node_id
    assert scope.name.startswith("test"), f"{node_id} is not a test"
    # The test with its decorators (a parametrized test names its cases there), and the
    # module-level tables and constants it uses by name (expected replies kept in one place).
    text = path.read_text("utf-8")
    lines = text.splitlines()
    first = min([scope.lineno, *(d.lineno for d in scope.decorator_list)])
    source = "\n".join(lines[first - 1 : scope.end_lineno])
    used = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source))
    for node in _tree(path).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id in used for t in targets):
                source += "\n" + (ast.get_source_segment(text, node) or "")
    return source


@pytest.mark.parametrize("code", [c for c, r in ROWS.items() if r.tests])
def test_named_tests_exist_and_show_the_code(code: str) -> None:
    """Each named test exists, and its own text names the code (any class) or one of the
    replies or report statuses that carry it: a test that never mentions the code cannot be
    the one that shows it."""
    row = ROWS[code]
    marks = [*_code_strings(code), *row.replies, *row.reports]
    for node_id in row.tests:
        source = _find(node_id)
        assert any(mark in source for mark in marks), (
            f"{node_id} does not mention {code} or {', '.join(row.replies + row.reports)}"
        )


def test_named_replies_and_reports_exist() -> None:
    for row in ROWS.values():
        for name in row.replies:
            assert name in CATALOGUE
            status = CATALOGUE[name].status
            assert status is not None and f"X.{status.subject}.{status.detail}" == row.code
        for name in row.reports:
            assert name in REPORTS
            status = REPORTS[name].status
            assert f"X.{status.subject}.{status.detail}" == row.code


def test_every_report_status_is_used_by_the_queue() -> None:
    """A report status in the catalogue that no code uses would be a row without a situation."""
    sources = "".join(
        p.read_text("utf-8")
        for p in (ROOT / "src" / "mailroom").rglob("*.py")
        if p.name != "reports.py" and p.parent.name != "codes"
    )
    for name in REPORTS:
        assert f"reports.{name}" in sources, f"reports.{name} is used nowhere"


def test_docs_registry_md_is_in_sync() -> None:
    assert DOC.read_text("utf-8") == registry_markdown(), (
        "docs/registry.md is stale: run `make docs`"
    )


def test_the_command_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mailroom", "replies", "--registry"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "X.7.28" in result.stdout and "X.6.10" in result.stdout
    assert result.stdout.splitlines()[0].startswith("mailroom sends ")
