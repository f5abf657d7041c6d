"""docs/guide.md's Python blocks as written: each one parses, and every name it uses is
imported or defined in it or in a block before it (the guide builds one program step by
step). tests/e2e/test_manager_e2e.py runs the whole program and section 7's tests
against a real apiserver."""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


def bound(tree: ast.AST) -> set[str]:
    """Every name a block binds: imports, definitions, assignments, arguments."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
            names.add(node.optional_vars.id)
    return names


def used(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def test_the_guide_has_its_blocks() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_every_name_a_block_uses_is_imported_or_defined_by_then(index: int) -> None:
    known = set(dir(builtins))
    for block in BLOCKS[:index]:
        known |= bound(ast.parse(block))
    tree = ast.parse(BLOCKS[index])
    missing = used(tree) - bound(tree) - known
    where = f"block {index + 1} of docs/guide.md"
    assert not missing, f"{where} uses {sorted(missing)}:\n{BLOCKS[index]}"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_every_name_a_block_imports_from_trio_controller_exists(index: int) -> None:
    import importlib

    for node in ast.walk(ast.parse(BLOCKS[index])):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trio_controller"):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                assert getattr(module, alias.name, None) is not None, (node.module, alias.name)
