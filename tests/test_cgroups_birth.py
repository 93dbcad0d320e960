"""Integration: where PID 1 starts, and how the container's cgroup ends (issue 14's speed).

On cgroup v2 with clone3(CLONE_INTO_CGROUP) the fork server's child is born in
the container's cgroup: no move, no ``cgroup`` word.  The proof is what the
parent sees the moment the server reports ``started``, before it has sent the
init a single message: PID 1 already in the cgroup, and no ``enter`` ever
called.  The slow path (a move while the init builds its rootfs, kept on v1 and
where the kernel lacks the clone) is forced in the same test for the pin: both
paths give the workload the same cgroup and the same limits.

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
from asyncinit import _syscalls as sc
from asyncinit.cgroups import FsManager, _steps, detect_host
from asyncinit.parent import _compile, _spawn
from tests.support.cgroups import managed
from tests.support.configs import in_own_user_namespace
from tests.support.containers import needs_root

pytestmark = [pytest.mark.integration, pytest.mark.anyio, needs_root]

HOST = detect_host()
MakeConfig = Callable[..., dict[str, Any]]
CLONES_INTO = HOST.version == 2 and sc.has_clone_into_cgroup()
needs_clone_into = pytest.mark.skipif(
    not CLONES_INTO, reason="cgroup v2 with clone3(CLONE_INTO_CGROUP) only (the tests/vm guest)"
)
PRINT_CGROUP = ("sh", "-c", "echo ready; read x")


class Seen:
    """What the parent saw at ``started``, and every ``enter`` of a cgroup step."""

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
        with open(f"/proc/{container.pid}/cgroup") as f:  # before any message to the init
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

    def __init__(self, pid: int, workload: str, files: dict[str, str], line: str) -> None:
        self.pid = pid
        self.workload = workload
        #: limit files of its cgroup, read while it ran
        self.files = files
        #: v2: /proc/PID/cgroup's line for its cgroup directory
        self.line = line


async def run_printing(config: dict[str, Any]) -> Run:
    """The workload's /proc/PID/cgroup and its cgroup's limit files, then its end."""
    async with await spawn(config, stdin=PIPE, stdout=PIPE) as container:
        assert container.stdout is not None
        assert container.stdin is not None
        seen = b""
        while not seen.endswith(b"\n"):
            seen += await container.stdout.receive(1)
        with open(f"/proc/{container.pid}/cgroup") as f:  # the host's view, as at_start
            workload = f.read()
        assert container.cgroup is not None
        directory = container.cgroup.directory("pids")
        files = {}
        for name in ("pids.max", "memory.max" if HOST.version == 2 else "cgroup.clone_children"):
            with open(os.path.join(directory, name)) as f:
                files[name] = f.read()
        relative = os.path.relpath(directory, HOST.v2_mount or "/sys/fs/cgroup")
        await container.stdin.send(b"\n")
        assert await container.wait() == 0
    return Run(container.pid, workload, files, f"0::/{relative}\n")


def with_limits(config: dict[str, Any]) -> dict[str, Any]:
    config["linux"]["resources"] = {"pids": {"limit": 64}, "memory": {"limit": 256 << 20}}
    return config


@needs_clone_into
@pytest.mark.parametrize("user_namespace", [False, True], ids=["direct", "intermediate"])
async def test_pid1_is_born_in_its_cgroup_and_never_moved(
    make_config: MakeConfig, watched: Seen, user_namespace: bool
) -> None:
    config = with_limits(make_config(*PRINT_CGROUP))
    if user_namespace:  # PID 1 forked by the intermediate, itself born in the cgroup
        config = in_own_user_namespace(config)
    run = await run_printing(config)
    assert watched.at_start == run.line  # in its cgroup before the init said a word
    assert watched.enters == []  # no move, and so no "cgroup" word
    assert run.workload == run.line


@needs_clone_into
async def test_born_in_the_cgroup_equals_the_move(
    make_config: MakeConfig, watched: Seen, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pin: the same config on the fast path and, forced, on the slow one."""
    fast = await run_printing(with_limits(make_config(*PRINT_CGROUP)))
    assert watched.enters == []
    monkeypatch.setattr(_compile, "born_in", lambda cgroup: False)
    slow = await run_printing(with_limits(make_config(*PRINT_CGROUP)))
    assert watched.enters == [slow.pid]  # moved while it built its rootfs
    assert watched.at_start != slow.line  # the caller's cgroup, until then
    assert fast.workload == fast.line
    assert slow.workload == slow.line
    assert fast.files == slow.files == {"pids.max": "64\n", "memory.max": f"{256 << 20}\n"}


@pytest.mark.skipif(HOST.version != 1, reason="the move is v1's only path")
async def test_v1_moves_pid1_while_it_builds_its_rootfs(
    make_config: MakeConfig, watched: Seen
) -> None:
    run = await run_printing(with_limits(make_config(*PRINT_CGROUP)))
    assert watched.enters == [run.pid]
    assert watched.at_start is not None
    moved_from = {line for line in watched.at_start.splitlines() if ":pids:" in line}
    moved_to = {line for line in run.workload.splitlines() if ":pids:" in line}
    assert moved_from.isdisjoint(moved_to)  # in the caller's pids cgroup at "started"


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
