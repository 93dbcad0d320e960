"""The daemon's wire vocabulary (asyncinit/_daemon_wire.py): both ends use the same
names, and the lean client pays for nothing but the module itself."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from asyncinit import _client, _daemon_wire
from asyncinit._daemon import request_refusal
from asyncinit._daemon_wire import RUN_FIELDS, DaemonKind, Refusal
from tests.support import CHECKOUT


def _typed_dict_keys(name: str) -> set[str]:
    """The keys of a TypedDict that exists for the type checker only."""
    tree = ast.parse(Path(_daemon_wire.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return {
                stmt.target.id
                for stmt in node.body
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
            }
    raise AssertionError(f"no class {name} in {_daemon_wire.__file__}")


def test_the_checked_fields_are_the_typed_ones() -> None:
    """RUN_FIELDS (what the daemon checks) and RunRequest (what mypy checks) agree,
    and the client's request is exactly those fields, served as it is."""
    assert set(RUN_FIELDS) == _typed_dict_keys("RunRequest")
    request = _client.run_request("/b", "ctr")
    assert set(request) == set(RUN_FIELDS)
    assert request_refusal(DaemonKind.RUN, dict(request), 3) is None


def test_kinds_and_refusals_are_distinct() -> None:
    kinds = [value for name, value in vars(DaemonKind).items() if name.isupper()]
    refusals = [value for name, value in vars(Refusal).items() if name.isupper()]
    assert len(set(kinds)) == len(kinds) == 7
    assert len(set(refusals)) == len(refusals)
    assert request_refusal("exec", {}, 3) == Refusal.UNKNOWN_REQUEST.format(kind="exec")


def test_the_wire_and_the_package_import_nothing_else() -> None:
    """Under ``python -S`` (the lean client's fastest spelling) neither the wire module
    nor the package's __init__ imports a module of its own: not typing, not importlib."""
    code = (
        "import sys, json; before = set(sys.modules); import asyncinit._daemon_wire; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=CHECKOUT,
        env={"PYTHONPATH": str(CHECKOUT)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == ["__future__", "asyncinit", "asyncinit._daemon_wire"]
