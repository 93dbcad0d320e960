"""runc's command line as a test drives it: one runtime (asyncinit or runc) with its own --root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import CHECKOUT, TIMEOUT_SCALE
from tests.support.configs import base_config
from tests.support.runc import RUNC


class Runtime:
    """One runtime's command line with its own --root."""

    #: seconds one command may take (CLI_TIMEOUT; a test may raise it for one instance)
    timeout: float = 0

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self.timeout = self.timeout or CLI_TIMEOUT
        if name == "runc":
            assert RUNC is not None
            self.argv = [RUNC, "--root", str(root)]
        else:
            self.argv = [sys.executable, "-m", "asyncinit", "--root", str(root)]

    def __call__(self, *args: str) -> tuple[int, str, str]:
        """Exit code, stdout, runc's error message.  Files, not pipes: the container's
        init inherits create's stdio and keeps it (as runc's does)."""
        env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(
                [*self.argv, *args],
                stdout=out,
                stderr=err,
                timeout=self.timeout,
                check=False,
                stdin=subprocess.DEVNULL,
                env=env,
            ).returncode
            out.seek(0)
            err.seek(0)
            return code, out.read(), error_message(err.read())

    def status(self, container_id: str) -> str:
        code, out, err = self("state", container_id)
        return json.loads(out)["status"] if code == 0 else err

    def wait_stopped(self, container_id: str) -> str:
        for _ in range(100):
            status = self.status(container_id)
            if status != "running":
                return status
            time.sleep(0.05)
        return "still running"


CLI_TIMEOUT = float(os.environ.get("ASYNCINIT_TEST_CLI_TIMEOUT", "60")) * TIMEOUT_SCALE
"""Seconds one command may take; the QEMU guest of tests/vm/run needs far more."""


def error_message(stderr: str) -> str:
    """The logged error, without runc 1.1's ``runc create failed: `` (asyncinit's too)."""
    for line in stderr.splitlines():
        if " level=error msg=" in line:
            message = str(json.loads(line.split(" msg=", 1)[1])).strip()
            for runtime in ("runc", "asyncinit"):
                for command in ("create", "run"):
                    message = message.removeprefix(f"{runtime} {command} failed: ")
            return message
    return ""


def new_id() -> str:
    return f"lc-{uuid.uuid4().hex[:10]}"


RUNTIMES = ["asyncinit", *(["runc"] if RUNC else [])]


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(request.param, tmp_path / f"root-{request.param}")
    yield rt
    # whatever a failed test left: killed and deleted
    for entry in rt.root.iterdir() if rt.root.exists() else ():
        rt("delete", "--force", entry.name)
    assert not rt.root.exists() or not any(rt.root.iterdir()), "state left behind"


@pytest.fixture
def write_config(bundle: Path) -> Callable[..., Path]:
    def write(*args: str, **changes: Any) -> Path:
        config = base_config(*args)
        config["root"]["path"] = "rootfs"
        config.update(changes)
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    return write
