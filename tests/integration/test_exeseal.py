"""The sealed interpreter (asyncinit/_exeseal.py): unwritable, and still a working Python.

No container here (tests/test_attacks.py, ``-k exe``, has the attack itself):
the two kinds of sealed file refuse every write, an interpreter started from
either finds its prefix as the plain one does, and ``reexec_sealed`` re-execs
exactly once.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from asyncinit._exeseal import (
    exec_path,
    interpreter,
    is_sealed,
    overlay_view,
    sealed_copy,
    self_exe_sealed,
)
from tests.support import CHECKOUT

_WHO_AM_I = (
    "import json, os, sys; sys.path.insert(0, sys.argv[1]);"
    "from asyncinit._exeseal import self_exe_sealed;"
    "print(json.dumps([sys.executable, sys.prefix, sys.base_prefix, self_exe_sealed()]))"
)


@pytest.fixture(params=["overlay", "memfd"])
def sealed(request: pytest.FixtureRequest) -> Iterator[int]:
    if request.param == "overlay" and os.geteuid() != 0:
        pytest.skip("overlayfs outside a user namespace needs root")
    fd = overlay_view(interpreter()) if request.param == "overlay" else sealed_copy(interpreter())
    yield fd
    os.close(fd)


def _errno_of(action: Callable[[], object]) -> int | None:
    try:
        action()
    except OSError as exc:
        return exc.errno
    return None


def test_sealed_file_refuses_every_write(sealed: int) -> None:
    path = f"/proc/self/fd/{sealed}"

    def write() -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"PWNED")
        finally:
            os.close(fd)

    assert _errno_of(write) in (errno.EROFS, errno.EPERM)
    assert _errno_of(lambda: os.truncate(path, 0)) in (errno.EROFS, errno.EPERM)
    with open(path, "rb") as f, open(interpreter(), "rb") as real:
        assert f.read() == real.read()
        assert is_sealed(f.fileno())


def test_interpreter_from_sealed_file_finds_its_prefix(sealed: int) -> None:
    """CPython takes sys.executable and its prefix from argv[0], not /proc/self/exe."""
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _WHO_AM_I, str(CHECKOUT)],
        executable=exec_path(sealed),
        pass_fds=[sealed],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout) == [sys.executable, sys.prefix, sys.base_prefix, True]


def test_plain_interpreter_is_not_sealed() -> None:
    assert not self_exe_sealed()


def test_reexec_sealed_once() -> None:
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[1]);"
        "print(os.getpid(), flush=True);"
        "from asyncinit._exeseal import reexec_sealed, self_exe_sealed;"
        "reexec_sealed(); print(os.getpid(), self_exe_sealed(), sys.argv[1:])"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(CHECKOUT), "x"],
        capture_output=True,
        text=True,
        check=True,
    )
    # the plain image prints its pid and re-execs; the sealed one prints it and goes on
    pid = str(result.stdout.split()[0])
    assert result.stdout.splitlines() == [pid, pid, f"{pid} True ['{CHECKOUT}', 'x']"]
