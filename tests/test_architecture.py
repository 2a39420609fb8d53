"""The structure the code keeps: one home for the ledger, and functions short enough to read.

Read from the code's own syntax trees, so a change that breaks a rule fails here, not in a
review months later.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "rituals", "scheduler", "notifiers", "tend")
LEDGER = ROOT / "scheduler" / "ledger"
MAX_FUNCTION_LINES = 80


def modules() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def outside_the_ledger() -> list[Path]:
    return [p for p in modules() if LEDGER not in p.parents]


@pytest.mark.parametrize("path", outside_the_ledger(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_outside_the_ledger_runs_sql_or_imports_its_rows(path: Path) -> None:
    names = imported(path)
    assert not {n for n in names if n == "sqlalchemy" or n.startswith("sqlalchemy.")}
    private = {"scheduler.ledger.rows", "scheduler.ledger.engine", "scheduler.ledger.base"}
    assert not names & private


@pytest.mark.parametrize("path", outside_the_ledger(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_outside_the_ledger_opens_a_connection(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert not calls & {"begin", "connect", "execute", "exec_driver_sql"}


def test_no_function_in_the_packages_is_longer_than_80_lines() -> None:
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
        for path in modules()
        if "migrations" not in path.parts
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_the_scheduler_shows_its_parts_in_its_folder_names() -> None:
    parts = {p.name for p in (ROOT / "scheduler").iterdir() if (p / "__init__.py").exists()}
    assert {"ledger", "planner", "dispatch", "acts", "reports", "worker"} <= parts
