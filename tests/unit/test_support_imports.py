"""Test modules take helpers from tests/support only, so each can move between folders.

pytest advises against importing from a conftest, and a helper imported from
another test module ties the two files (and their folders) together.  Relative
imports would break when a file moves to tests/unit or tests/integration.
"""

from __future__ import annotations

import ast

from tests.support import CHECKOUT

TESTS = CHECKOUT / "tests"
#: Packages with their own rules: the engine harness imports its own conftest's World.
OWN_RULES = ("support", "engines")


def _imported_modules(tree: ast.Module) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." * node.level + (node.module or "")))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def _not_support(module: str) -> bool:
    """A test module, a conftest, or a tests.* module outside tests.support."""
    last = module.rsplit(".", 1)[-1]
    outside = module.startswith("tests.") and not module.startswith("tests.support")
    return outside or last.startswith("test_") or last == "conftest"


def test_test_modules_import_helpers_only_from_tests_support() -> None:
    problems = []
    scanned: set[str] = set()
    for path in sorted(TESTS.rglob("*.py")):
        relative = path.relative_to(TESTS)
        if relative.parts[0] in OWN_RULES:
            continue
        scanned.add(relative.parts[0])
        for line, module in _imported_modules(ast.parse(path.read_text(), str(path))):
            if module.startswith("."):
                problems.append(f"{relative}:{line}: relative import {module}")
            elif _not_support(module):
                problems.append(f"{relative}:{line}: imports {module}")
    assert not problems, "import helpers from tests.support:\n" + "\n".join(problems)
    assert {"unit", "integration", "conftest.py"} <= scanned, scanned  # both tiers were read
