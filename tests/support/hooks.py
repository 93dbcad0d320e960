"""Helpers for hook tests: executable scripts, hook entries, polling for files and pids,
a config held at a stage of its start."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import asyncinit

from .containers import MakeConfig
from .host import processes_in_pid_namespace

PATH_ENV = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

#: Records what a hook sees: the state on stdin, its mount and pid namespaces,
#: whether "/" is the host's root or the container's, and its turn in the order.
RECORD = """#!/bin/sh
kind=$1
log=$2
cat > "$log/$kind.state"
readlink /proc/self/ns/mnt > "$log/$kind.mnt"
readlink /proc/self/ns/pid > "$log/$kind.pidns"
if [ -e /in-rootfs ]; then echo new; else echo old; fi > "$log/$kind.root"
echo "$kind" >> "$log/order"
"""

#: Fails with a message on stderr and status 3 (after a line on stdout).
FAIL = """#!/bin/sh
cat > /dev/null
echo "some stdout"
echo "boom from $1" >&2
exit 3
"""

#: Writes its state, its pid and the pid of a child, then waits for ever.
HANG = """#!/bin/sh
log=$2
cat > "$log/$1.state"
sleep 600 &
echo "$$ $!" > "$log/$1.pids"
echo ready > "$log/$1.ready"
wait
"""


def script(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def hook(path: str, *args: str, timeout: int | None = None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "args": [os.path.basename(path), *args]}
    entry["env"] = [PATH_ENV]
    if timeout is not None:
        entry["timeout"] = timeout
    entry.update(extra)
    return entry


def wait_for(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return path.read_text()


def gone(pid: int, timeout: float = 5) -> bool:
    """Whether ``pid`` is gone (or a zombie about to be reaped) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):  # gone between the open and the read
            return True
        if state == "Z":
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def state_of(log: Path, kind: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((log / f"{kind}.state").read_text())
    return result


class PidNamespace:
    """A container's pid namespace, pinned by an open fd while the test looks at it.

    The pin matters: once freed, a namespace's inode number goes to the next
    namespace created on the machine (another test run's container), and a
    comparison of ``/proc/PID/ns/pid`` links would find that one's processes.
    """

    def __init__(self, pid: int) -> None:
        self.fd = os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.name = os.readlink(f"/proc/{pid}/ns/pid")

    def processes(self) -> list[int]:
        return processes_in_pid_namespace(self.name)

    def close(self) -> None:
        os.close(self.fd)


def with_log(config: dict[str, Any], log: Path) -> dict[str, Any]:
    config["mounts"].append(
        {"destination": "/log", "type": "bind", "source": str(log), "options": ["rbind", "rw"]}
    )
    return config


def init_backend_for(failure: str, anyio_backend: str) -> str:
    """Timeouts cost a second each: run them once, the parent on asyncio, the init on trio."""
    if failure == "timeout":
        if anyio_backend != "asyncio":
            pytest.skip("timeouts run once: parent on asyncio, init on trio")
        return "trio"
    return "asyncio"


def held_config(
    make_config: MakeConfig, bundle: Path, log: Path, tmp_path: Path, stage: str
) -> dict[str, Any]:
    """A config whose start blocks at ``stage`` (HANG writes ``<stage>.ready``)."""
    log.mkdir(exist_ok=True)
    log.chmod(0o777)
    hang = script(tmp_path / "hang", HANG)
    config = make_config("sh", "-c", "touch /log/workload-ran; exec sleep 600")
    config["mounts"].append(
        {"destination": "/log", "type": "bind", "source": str(log), "options": ["rbind"]}
    )
    config["hooks"] = {
        "poststop": [hook(script(tmp_path / "record", RECORD), "poststop", str(log))]
    }
    if stage == "premount":
        config["mounts"][-1]["premount"] = [hook(hang, stage, str(log))]
    elif stage == "startContainer":
        in_image = "/" + Path(script(bundle / "rootfs" / "hang", HANG)).name
        config["hooks"][stage] = [hook(in_image, stage, "/log")]
    elif stage != "python-createRuntime":
        config["hooks"][stage] = [hook(hang, stage, str(log))]
    return config


async def cancel_spawn_in_create_runtime(
    config: dict[str, Any], timeout: float, during: Callable[[], object] = lambda: None
) -> None:
    """Cancel ``spawn(config)`` while its createRuntime Python hook runs (``during``
    called in the hook first); fails unless the cancellation ends it within ``timeout``."""
    hook_started = anyio.Event()

    async def slow_hook(container: asyncinit.Container) -> None:
        during()
        hook_started.set()
        await anyio.sleep(30)

    with anyio.move_on_after(timeout) as scope:
        async with anyio.create_task_group() as tg:

            async def start() -> None:
                hooks = asyncinit.PythonHooks(create_runtime=[slow_hook])
                await asyncinit.spawn(config, hooks=hooks)

            tg.start_soon(start)
            await hook_started.wait()
            tg.cancel_scope.cancel()
    assert not scope.cancelled_caught
