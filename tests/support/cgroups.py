"""Helpers for the cgroup tests: what the leak check compares, forked probes, test-named paths.

The ``no_cgroup_leak`` fixture is in tests/conftest.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from asyncinit.cgroups import FsManager, compute_plan
from asyncinit.cgroups._host import Hierarchy, Host

#: Hosts built by hand: a v1 hybrid like this machine's, a pure v2 like the guest's.
V1 = Host(
    False,
    (
        Hierarchy("/sys/fs/cgroup/cpu,cpuacct", "/", ("cpu", "cpuacct")),
        Hierarchy("/sys/fs/cgroup/cpuset", "/", ("cpuset",)),
        Hierarchy("/sys/fs/cgroup/memory", "/", ("memory",)),
        Hierarchy("/sys/fs/cgroup/devices", "/", ("devices",)),
        Hierarchy("/sys/fs/cgroup/freezer", "/", ("freezer",)),
        Hierarchy("/sys/fs/cgroup/blkio", "/", ("blkio",)),
        Hierarchy("/sys/fs/cgroup/pids", "/", ("pids",)),
        Hierarchy("/sys/fs/cgroup/systemd", "/", ("name=systemd",)),
    ),
    own={"cpu": "/user/1", "cpuacct": "/user/1", "memory": "/sandbox/7", "name=systemd": "/"},
)
V2 = Host(
    True,
    v2_mount="/sys/fs/cgroup",
    v2_controllers=("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"),
    own={"": "/session/shell"},
)


def cgroup_dirs(host: Host) -> set[str]:
    """Every directory under our own cgroup in each hierarchy, and each root's children."""
    roots: list[tuple[str, str]] = []
    if host.unified:
        mount = host.v2_mount or "/sys/fs/cgroup"
        roots.append(
            (mount, os.path.normpath(os.path.join(mount, host.own.get("", "/").lstrip("/"))))
        )
    for h in host.hierarchies:
        own = host.own.get(h.controllers[0], "/")
        roots.append(
            (h.mount, os.path.normpath(os.path.join(h.mount, os.path.relpath(own, h.root))))
        )
    if os.path.isdir("/sys/fs/cgroup/unified") and not host.unified:
        roots.append(("/sys/fs/cgroup/unified", "/sys/fs/cgroup/unified"))
    found: set[str] = set()
    for mount, own in roots:
        found.update(entry.path for entry in os.scandir(mount) if entry.is_dir())
        for path, dirs, _files in os.walk(own):
            found.update(os.path.join(path, d) for d in dirs)
    return found


def unique_name() -> str:
    return f"asyncinit-test-{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def managed(resources: Any = None, path: str | None = None, **kwargs: Any) -> Iterator[FsManager]:
    """A manager for a test-named cgroup that is destroyed whatever happens."""
    name = unique_name()
    plan = compute_plan(resources, container_id=name, cgroups_path=path, **kwargs)
    manager = FsManager(plan, resources)
    try:
        yield manager
    finally:
        manager.destroy()


class Child:
    """A forked child that waits for "go", runs ``body`` and reports its JSON result."""

    def __init__(self, body: Callable[[], Any]) -> None:
        go_r, go_w = os.pipe()
        out_r, out_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - child
            code = 0
            try:
                os.close(go_w)
                os.close(out_r)
                os.read(go_r, 1)
                result = body()
                os.write(out_w, json.dumps(result).encode())
            except BaseException as exc:
                os.write(out_w, json.dumps({"exception": repr(exc)}).encode())
                code = 1
            finally:
                os._exit(code)
        os.close(go_r)
        os.close(out_w)
        self._go, self._out = go_w, out_r

    def start(self) -> None:
        os.write(self._go, b"g")
        os.close(self._go)

    def result(self) -> Any:
        chunks = []
        while chunk := os.read(self._out, 65536):
            chunks.append(chunk)
        os.close(self._out)
        _, status = os.waitpid(self.pid, 0)
        self.status = status
        data = b"".join(chunks)
        return json.loads(data) if data else None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


def remove_runc_cgroup(container_id: str, cgroups_path: str | None = None) -> None:
    """Remove what runc left of a container's cgroup.  runc 1.1.5 gives up removing it
    after ~150 ms of EBUSY (the exiting processes are still being torn down), which
    happens under load and always under emulation: retry here for up to 10 s."""
    plan = compute_plan(None, container_id=container_id, cgroups_path=cgroups_path)
    deadline = time.monotonic() + 10
    for hierarchy in plan["hierarchies"]:
        while os.path.isdir(hierarchy["directory"]) and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                os.rmdir(hierarchy["directory"])
            time.sleep(0.05)
