"""The OCI runtime-tools validation client: its default config and its runtime calls.

The validation programs (runtime-tools' ``validation/`` and ``runtimetest``) are not
packaged in Debian, but the library they build on is
(``golang-github-opencontainers-runtime-tools-dev``): :func:`default_config` builds
``tests/data/rtval/generate.go`` against it with Debian's Go and prints the config
every validation program starts from (``generate.New("linux")``, root ``.``: the
bundle is the rootfs, with runtime-tools' default seccomp profile, ambient
capabilities, hostname...).  The build is cached by the source's and Go's hash.

:class:`Client` drives a runtime as their ``validation/util`` does: ``create
[--pid-file F] --bundle B ID`` with the container's stdio on files in the bundle,
``start``/``state``/``kill ID SIG``/``delete`` with stdout a pipe read to its end
(Go's ``cmd.Output()``: a runtime that leaves the pipe open in a surviving process
hangs the client), the ID left out where a program checks that a command refuses
to run without one, ``state`` polled until a status.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from . import CHECKOUT, DATA
from .cgroups import remove_runc_cgroup
from .runc import RUNC

GOCODE = Path("/usr/share/gocode")
GENERATOR_SOURCE = DATA / "rtval" / "generate.go"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "asyncinit-rtval"
#: What .ci/run installs for this client.
PACKAGES = "golang-go golang-github-opencontainers-runtime-tools-dev"


def missing() -> str | None:
    """Why the client cannot run here, or None."""
    if shutil.which("go") is None:
        return f"Go is not installed (apt-get install {PACKAGES})"
    if not (GOCODE / "src/github.com/opencontainers/runtime-tools/generate").is_dir():
        return f"runtime-tools' Go source is not installed (apt-get install {PACKAGES})"
    if RUNC is None:
        return "runc is not installed: the differential needs it"
    return None


def generator() -> Path:
    """runtime-tools' config generator, built once per source and Go version."""
    go_version = subprocess.run(
        ["go", "version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    key = hashlib.sha256(GENERATOR_SOURCE.read_bytes() + go_version.encode()).hexdigest()[:16]
    binary = CACHE / key / "generate"
    if binary.exists():
        return binary
    work = CACHE / f"{key}.build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copy(GENERATOR_SOURCE, work / "main.go")
    env = {
        **os.environ,
        "GO111MODULE": "off",  # Debian's -dev packages are a GOPATH tree
        "GOPATH": str(GOCODE),
        "GOCACHE": str(CACHE / "gocache"),
        "GOFLAGS": "",
    }
    subprocess.run(
        ["go", "build", "-o", "generate", "."], cwd=work, env=env, check=True, timeout=600
    )
    (CACHE / key).mkdir(exist_ok=True)
    os.replace(work / "generate", binary)  # atomic: concurrent sessions race harmlessly
    shutil.rmtree(work)
    return binary


@cache
def _default_config_text() -> str:
    return subprocess.run(
        [str(generator())], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def default_config(*args: str) -> dict[str, Any]:
    """The validation programs' config (a fresh copy), running ``args``."""
    config: dict[str, Any] = json.loads(_default_config_text())
    config["process"]["args"] = list(args)
    return config


def runtime_executable(name: str, directory: Path, root: Path) -> Path:
    """An executable the programs take as RUNTIME: runc or this checkout's asyncinit,
    each with its own state directory."""
    if name == "runc":
        assert RUNC is not None
        command = f"exec '{RUNC}' --root '{root}' \"$@\""
    else:
        command = (
            f"export PYTHONPATH='{CHECKOUT}'\n"
            f"exec '{sys.executable}' -m asyncinit --root '{root}' \"$@\""
        )
    path = directory / name
    path.write_text(f"#!/bin/sh\n{command}\n")
    path.chmod(0o755)
    return path


class Client:
    """One runtime as the validation programs call it, on one bundle."""

    def __init__(self, runtime: Path, bundle: Path) -> None:
        self.runtime = runtime
        self.bundle = bundle
        self.ids: set[str] = set()  # every id this client created, for the cleanup

    def new_id(self) -> str:
        return str(uuid.uuid4())

    def set_config(self, config: dict[str, Any]) -> None:
        (self.bundle / "config.json").write_text(json.dumps(config))

    def create(self, cid: str | None, pid_file: Path | None = None) -> bool:
        args = ["create", *(["--pid-file", str(pid_file)] if pid_file else [])]
        args += ["--bundle", str(self.bundle), *([cid] if cid else [])]
        if cid:
            self.ids.add(cid)
        with open(self.bundle / "stdout", "ab") as out, open(self.bundle / "stderr", "ab") as err:
            result = subprocess.run(
                [str(self.runtime), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=60,
                check=False,
            )
        return result.returncode == 0

    def call(self, *args: str) -> tuple[bool, str]:
        """A command as Go's ``cmd.Output()`` runs it: success and stdout."""
        result = subprocess.run(
            [str(self.runtime), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return result.returncode == 0, result.stdout

    def start(self, cid: str | None) -> bool:
        return self.call("start", *([cid] if cid else []))[0]

    def kill(self, cid: str | None, signal: str = "TERM") -> bool:
        return self.call("kill", *([cid] if cid else []), signal)[0]

    def delete(self, cid: str | None) -> bool:
        return self.call("delete", *([cid] if cid else []))[0]

    def state(self, cid: str | None) -> dict[str, Any] | None:
        ok, out = self.call("state", *([cid] if cid else []))
        if not ok:
            return None
        state: dict[str, Any] = json.loads(out)
        return state

    def wait_for(self, cid: str, *statuses: str, timeout: float = 10) -> bool:
        """Poll ``state`` (as WaitingForStatus does, more often) until one of ``statuses``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(cid)
            if state is None:
                return False
            if state["status"] in statuses:
                return True
            time.sleep(0.05)
        return False

    def clean(self) -> None:
        """Whatever a program left: killed and deleted (runc's cgroup too)."""
        for cid in self.ids:
            self.call("delete", "--force", cid)
            if self.runtime.name == "runc":  # runc 1.1.5 may leave it (EBUSY)
                remove_runc_cgroup(cid)
