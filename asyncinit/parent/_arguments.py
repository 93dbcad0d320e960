"""spawn()'s arguments, checked before anything is read or opened.

A wrong type is a TypeError naming the argument (not a failure deep inside,
after the fork server was asked); a value of the right type out of range is a
UsageError (a ValueError).  Shown values are bounded (``show``): an argument may
be huge.
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import cast

from .._errors import UsageError, wrong_type
from .._lines import show
from ..config import Spec
from ._hooks import PythonHooks

_NONE = type(None)
_CALLABLE = cast("type", Callable)  # isinstance() takes the ABC
_BACKENDS = ("asyncio", "trio")
_STDIO = "an fd, PIPE, DEVNULL or None"
#: Each argument: the Python types it may have, and how the TypeError says them.
_TYPES: Mapping[str, tuple[tuple[type, ...], str]] = {
    "config": ((Spec, Mapping, str, os.PathLike), "a Spec, a config.json dict or a path"),
    "bundle": ((str, os.PathLike, _NONE), "a path or None"),
    "container_id": ((str, _NONE), "a str or None"),
    "stdin": ((int, _NONE), _STDIO),
    "stdout": ((int, _NONE), _STDIO),
    "stderr": ((int, _NONE), _STDIO),
    "hooks": ((PythonHooks, _NONE), "a PythonHooks or None"),
    "hook_timeout": ((int, float, _NONE), "a number of seconds or None"),
    "backend": ((str,), '"asyncio" or "trio"'),
    "init": ((str, _NONE), '"exec", "supervise" or None'),
    "signal_group": ((bool, _NONE), "a bool or None"),
    "pass_fds": ((Sequence,), "a sequence of fds"),
    "no_pivot_root": ((bool,), "a bool"),
    "console_size": ((tuple, list, _NONE), "(rows, columns) or None"),
    "seccomp_handler": ((_CALLABLE, _NONE), "an async callable or None"),
}


def check_spawn_arguments(arguments: Mapping[str, object]) -> None:
    """TypeError or UsageError for the first bad argument of spawn(), naming it."""
    for name, value in arguments.items():
        kinds, expected = _TYPES[name]
        if (
            not isinstance(value, kinds)
            or (isinstance(value, bool) and bool not in kinds)
            or (isinstance(value, str | bytes | bytearray) and str not in kinds)
        ):
            raise wrong_type("spawn", name, value, expected)
        if isinstance(value, os.PathLike) and not isinstance(os.fspath(value), str):
            raise wrong_type("spawn", name, os.fspath(value), expected)
    for name in ("stdin", "stdout", "stderr"):
        choice = arguments[name]
        if isinstance(choice, int) and choice < 0 and choice not in _SPECIAL_STDIO:
            raise UsageError(f"spawn(): {name} must be {_STDIO}, not {show(choice)}")
    _check_values(arguments)


_SPECIAL_STDIO = (subprocess.PIPE, subprocess.DEVNULL)


def _check_values(arguments: Mapping[str, object]) -> None:
    timeout = arguments["hook_timeout"]
    if isinstance(timeout, int | float) and not (timeout > 0 and math.isfinite(timeout)):
        expected = "a positive number of seconds or None"
        raise UsageError(f"spawn(): hook_timeout must be {expected}, not {show(timeout)}")
    if arguments["backend"] not in _BACKENDS:
        raise UsageError(
            f'spawn(): backend must be "asyncio" or "trio", not {show(arguments["backend"])}'
        )
    fds = arguments["pass_fds"]
    assert isinstance(fds, Sequence)
    for index, fd in enumerate(fds):
        if not isinstance(fd, int) or isinstance(fd, bool):
            raise wrong_type("spawn", f"pass_fds[{index}]", fd, "an fd (int)")
        if fd < 0:
            raise UsageError(f"spawn(): pass_fds[{index}] must be an fd, not {fd}")
    size = arguments["console_size"]
    if size is not None and not is_console_size(size):
        raise UsageError(f"spawn(): console_size must be (rows, columns), not {show(size)}")


def is_console_size(size: object) -> bool:
    return (
        isinstance(size, tuple | list)
        and len(size) == 2
        and all(type(n) is int and 0 <= n <= 0xFFFF for n in size)
    )
