"""Integration: where PID 1 starts, and how the container's cgroup ends (issue 14's speed).

The fork server's child starts in the container's cgroup: on v2 it is born
there (clone3 CLONE_INTO_CGROUP), on v1 it joins by writing 0 into each
``tasks`` file while single-threaded (no RCU grace period).  No move, no
``cgroup`` word.  The proof is what the parent sees once the server reported
``started`` and PID 1 made its namespaces (on v1 it joins just before), before
the parent has sent the init a single message, so before any move: PID 1
already in the cgroup, and no ``enter`` ever called.  The slow path (the
parent moves PID 1 while the init builds its rootfs; v2 kernels without the
clone) is forced in the same test for the pin: both paths give the workload
the same cgroup and the same limits.

The destroy fast path (rmdir first, the freeze/kill walk only when the cgroup is
not empty) is pinned to the full kill the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from asyncinit import PIPE, Container, spawn
from asyncinit._syscalls._clone import has_clone_into_cgroup
from asyncinit.cgroups import CgroupManager, FsManager, _steps, detect_host
from asyncinit.parent import _compile, _spawn
from tests.support.cgroups import managed
from tests.support.configs import in_own_user_namespace
from tests.support.containers import needs_root

pytestmark = [pytest.mark.integration, pytest.mark.anyio, needs_root]

HOST = detect_host()
MakeConfig = Callable[..., dict[str, Any]]
FAST = HOST.version == 1 or has_clone_into_cgroup()
needs_fast_entry = pytest.mark.skipif(
    not FAST, reason="cgroup v2 without clone3(CLONE_INTO_CGROUP): the move is the only path"
)
WAIT_FOR_INPUT = ("sh", "-c", "echo ready; read x")


class Seen:
    """What the parent saw at ``started``, and every ``enter`` (a move by the parent)."""

    def __init__(self) -> None:
        self.at_start: str | None = None
        self.enters: list[int] = []


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> Seen:
    seen = Seen()
    started = _spawn._started
    enter = _steps.enter

    async def spy_started(*args: Any) -> Container:
        container = await started(*args)
        # Before any message to the init (no move can have happened yet), but once
        # PID 1 has made its namespaces: the first thing it does after joining (v1).
        deadline = time.monotonic() + 10
        while (
            os.stat(f"/proc/{container.pid}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino
        ):
            assert time.monotonic() < deadline, "PID 1 made no mount namespace"
            time.sleep(0.001)
        with open(f"/proc/{container.pid}/cgroup") as f:
            seen.at_start = f.read()
        return container

    def spy_enter(plan: Any, pid: int, skipped: Any = ()) -> None:
        seen.enters.append(pid)
        enter(plan, pid, skipped)

    monkeypatch.setattr(_spawn, "_started", spy_started)
    monkeypatch.setattr(_steps, "enter", spy_enter)
    return seen


class Run:
    """A container whose workload was seen running, and ended."""

    def __init__(self, pid: int, cgroups: str, files: dict[str, str], wanted: set[str]) -> None:
        self.pid = pid
        #: /proc/PID/cgroup of the workload, read by the parent while it ran
        self.cgroups = cgroups
        #: limit files of its cgroup, read while it ran
        self.files = files
        #: the lines /proc/PID/cgroup shows for the container's cgroup directories
        self.wanted = wanted

    def in_its_cgroup(self, cgroups: str | None) -> bool:
        return cgroups is not None and self.wanted <= set(cgroups.splitlines())


def wanted_lines(manager: CgroupManager) -> set[str]:
    """ "ID:controllers:/path" (v1) or "0::/path" (v2) for each directory of the cgroup."""
    if HOST.version == 2:
        relative = os.path.relpath(manager.directory(), HOST.v2_mount or "/sys/fs/cgroup")
        return {f"0::/{relative}"}
    lines = set()
    with open("/proc/self/cgroup") as f:
        ours = [line.rstrip("\n").split(":", 2) for line in f]
    for hierarchy in manager.plan["hierarchies"]:
        found = HOST.hierarchy(hierarchy["controllers"][0])
        assert found is not None
        relative = os.path.relpath(hierarchy["directory"], found.mount)
        for number, controllers, _path in ours:
            if hierarchy["controllers"][0] in controllers.split(","):
                lines.add(f"{number}:{controllers}:{os.path.join(found.root, relative)}")
    return lines


async def run_waiting(config: dict[str, Any]) -> Run:
    """Start a workload that waits, look at it and its cgroup, let it end."""
    async with await spawn(config, stdin=PIPE, stdout=PIPE) as container:
        assert container.stdout is not None
        assert container.stdin is not None
        seen = b""
        while not seen.endswith(b"\n"):
            seen += await container.stdout.receive(1)
        with open(f"/proc/{container.pid}/cgroup") as f:  # the host's view, as at_start
            cgroups = f.read()
        assert container.cgroup is not None
        directory = container.cgroup.directory("pids")
        files = {}
        for name in ("pids.max", "memory.max" if HOST.version == 2 else "tasks"):
            with open(os.path.join(directory, name)) as f:
                files[name] = f.read().replace(str(container.pid), "PID 1")
        wanted = wanted_lines(container.cgroup)
        await container.stdin.send(b"\n")
        assert await container.wait() == 0
    return Run(container.pid, cgroups, files, wanted)


def with_limits(config: dict[str, Any]) -> dict[str, Any]:
    config["linux"]["resources"] = {"pids": {"limit": 64}, "memory": {"limit": 256 << 20}}
    return config


@needs_fast_entry
@pytest.mark.parametrize("user_namespace", [False, True], ids=["direct", "intermediate"])
async def test_pid1_starts_in_its_cgroup_and_is_never_moved(
    make_config: MakeConfig, watched: Seen, user_namespace: bool
) -> None:
    """v2: born there by clone3; v1: joined by the server's child before anything else."""
    config = with_limits(make_config(*WAIT_FOR_INPUT))
    if user_namespace:  # PID 1 forked by the intermediate, which started in the cgroup
        config = in_own_user_namespace(config)
    run = await run_waiting(config)
    assert run.in_its_cgroup(watched.at_start)  # before the init was sent a word
    assert watched.enters == []  # no move, and so no "cgroup" word
    assert run.in_its_cgroup(run.cgroups)


@needs_fast_entry
async def test_the_fast_entry_equals_the_move(
    make_config: MakeConfig, watched: Seen, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pin: the same config on the fast path and, forced, on the slow one."""
    fast = await run_waiting(with_limits(make_config(*WAIT_FOR_INPUT)))
    assert watched.enters == []
    monkeypatch.setattr(_compile, "cgroup_entry", lambda cgroup: "move")
    slow = await run_waiting(with_limits(make_config(*WAIT_FOR_INPUT)))
    assert watched.enters == [slow.pid]  # moved while it built its rootfs
    assert not slow.in_its_cgroup(watched.at_start)  # in the caller's cgroup until then
    assert fast.in_its_cgroup(fast.cgroups)
    assert slow.in_its_cgroup(slow.cgroups)
    extra = {"memory.max": f"{256 << 20}\n"} if HOST.version == 2 else {"tasks": "PID 1\n"}
    assert fast.files == slow.files == {"pids.max": "64\n", **extra}


# --- the end: rmdir first, the kill walk only when something is left ---------------


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per FsManager.kill_all call."""
    calls: list[int] = []
    kill_all = FsManager.kill_all

    def counted(self: FsManager, signum: int = signal.SIGKILL) -> None:
        calls.append(signum)
        kill_all(self, signum)

    monkeypatch.setattr(FsManager, "kill_all", counted)
    return calls


def test_destroy_of_an_empty_cgroup_skips_the_kill(kills: list[int]) -> None:
    with managed() as manager:
        manager.apply()
        manager.destroy()
        assert not manager.exists()
    assert kills == []


def test_destroy_of_a_populated_cgroup_kills_as_the_full_path(kills: list[int]) -> None:
    """The pin: a cgroup with a process in it is emptied and removed as before."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        time.sleep(60)
        os._exit(0)
    try:
        with managed() as manager:
            manager.apply(pid)
            manager.destroy()
            assert not manager.exists()
        assert kills == [signal.SIGKILL]
        _, status = os.waitpid(pid, 0)  # killed, not timed out
        assert os.WIFSIGNALED(status)
        assert os.WTERMSIG(status) == signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
