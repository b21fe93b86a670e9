"""Every public class and function of ``src/axline`` says in a docstring what it is for.

Public: a module-level class or function, or a method of a public class, whose name does not start
with ``_``. Functions nested in functions are private to them and need none.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "axline"


def undocumented(tree: ast.AST, where: str) -> list[str]:
    """``file:line name`` of each public class or function in ``tree`` without a docstring."""
    out: list[str] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if child.name.startswith("_"):
                continue
            if ast.get_docstring(child) is None:
                out.append(f"{where}:{child.lineno} {prefix}{child.name}")
            if isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")

    walk(tree, "")
    return out


def test_every_public_class_and_function_has_a_docstring():
    missing: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        missing += undocumented(tree, str(path.relative_to(SRC.parent)))
    assert missing == [], f"{len(missing)} public classes/functions without a docstring:\n" + "\n".join(missing)


def test_the_check_sees_what_it_must():
    tree = ast.parse('''
def documented():
    """Does a thing."""


def bare():
    pass


def _private():
    pass


class Thing:
    """A thing."""

    def method(self):
        pass

    def _hidden(self):
        pass


class _Private:
    def method(self):
        pass


def outer():
    """Has a helper inside."""

    def inner():
        pass
''')
    assert undocumented(tree, "m.py") == ["m.py:6 bare", "m.py:17 Thing.method"]
