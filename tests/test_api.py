"""The public API is what asyncinit/__init__.py says it is, and stays lean to import."""

from __future__ import annotations

import subprocess
import sys

import asyncinit


def test_every_public_name_resolves() -> None:
    for name in asyncinit.__all__:
        assert getattr(asyncinit, name) is not None, name
    assert set(asyncinit.__all__) <= set(dir(asyncinit))


def test_errors_form_one_hierarchy() -> None:
    for name in (
        "ConfigError",
        "InitError",
        "HookError",
        "ContainerStartError",
        "NetworkError",
        "UsageError",
    ):
        assert issubclass(getattr(asyncinit, name), asyncinit.AsyncInitError), name
    assert issubclass(asyncinit.InitError, OSError)


def test_the_init_path_imports_neither_cattrs_nor_pyroute2() -> None:
    """PID 1 (and the fork server) must not pay for the parent's imports."""
    code = (
        "import sys, asyncinit.init._entry, asyncinit.parent._forkserver; "
        "print(sorted(m for m in ('cattrs', 'pyroute2', 'trio', 'asyncinit.config') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
