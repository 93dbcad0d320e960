"""SCMP_ACT_NOTIFY: a child's mkdirs answered from the parent's loop; runc's agent protocol.

The child (tests/support/seccomp_probe.py) loads a filter with a NOTIFY rule and prints
the listener's fd number; the parent takes a copy with pidfd_getfd, as runc's
parent does on procSeccomp, then answers on asyncio and on trio.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from asyncinit import _syscalls
from asyncinit.seccomp import (
    AgentError,
    Notification,
    Notifications,
    compile_profile,
    parse_profile,
    process_state,
    receive_process_state,
    send_to_agent,
)
from tests.support import CHECKOUT

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(os.geteuid() != 0, reason="pidfd_getfd of a child needs ptrace rights"),
]

NOTIFY_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
}


class Child:
    """A probe child that loads a NOTIFY profile, hands over its listener, then probes."""

    def __init__(self, probes: list[str], profile: dict[str, Any] = NOTIFY_MKDIR) -> None:
        plan = compile_profile(parse_profile(profile)).to_plan()
        spec = json.dumps({"plan": plan, "probes": probes, "print_fd": True})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.seccomp_probe", spec],
            cwd=CHECKOUT,
            env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def listener(self) -> int:
        """The child's listener fd, copied with pidfd_getfd (runc's procSeccomp)."""
        assert self.process.stdout is not None
        number = int(self.process.stdout.readline())
        pidfd = os.pidfd_open(self.process.pid)
        try:
            return _syscalls.pidfd_getfd(pidfd, number)
        finally:
            os.close(pidfd)

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"g")
        self.process.stdin.close()

    async def report(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        out = await anyio.to_thread.run_sync(self.process.stdout.read)
        assert await anyio.to_thread.run_sync(self.process.wait) == 0
        self.process.stdout.close()
        report: dict[str, Any] = json.loads(out)
        return report


def path_of(notification: Notification) -> str:
    """mkdir(path, mode) or mkdirat(dirfd, path, mode): the path, read from the caller."""
    pointer = notification.args[0 if notification.syscall_name == "mkdir" else 1]
    return notification.read_string(pointer).decode()


async def test_a_handler_denies_one_mkdir_emulates_another_and_lets_the_rest_run(
    tmp_path: Path,
) -> None:
    names = ["allowed", "denied", "emulated", "at-allowed"]
    child = Child(
        [
            f"mkdir:{tmp_path / names[0]}",
            f"mkdir:{tmp_path / names[1]}",
            f"mkdir:{tmp_path / names[2]}",
            f"mkdirat:{tmp_path / names[3]}",
        ]
    )
    seen = []
    async with Notifications(child.listener()) as notifications:
        child.go()
        async for notification in notifications:
            path = path_of(notification)
            seen.append((notification.syscall_name, os.path.basename(path), notification.pid))
            if path.endswith("/denied"):
                assert notification.respond(errno=errno.EROFS)
            elif path.endswith("/emulated"):
                assert notification.respond(value=0)  # "succeeds" without running
            else:
                assert notification.continue_()
            if len(seen) == len(names):
                break
    report = await child.report()
    assert report["after"] == [0, -errno.EROFS, 0, 0]
    assert [name for _, name, _ in seen] == names
    assert [call for call, _, _ in seen] == ["mkdir", "mkdir", "mkdir", "mkdirat"]
    assert {pid for _, _, pid in seen} == {child.process.pid}
    assert sorted(os.listdir(tmp_path)) == ["allowed", "at-allowed"]


async def test_unanswered_notifications_are_denied_and_iteration_ends_with_the_child(
    tmp_path: Path,
) -> None:
    child = Child([f"mkdir:{tmp_path / 'a'}", f"mkdir:{tmp_path / 'b'}"])
    notifications = Notifications(child.listener())
    child.go()
    reports: list[dict[str, Any]] = []
    count = 0

    async def reap() -> None:  # on Linux 6.1 the end (POLLHUP) comes when the child is reaped
        reports.append(await child.report())

    async with anyio.create_task_group() as group:
        group.start_soon(reap)
        async for notification in notifications:
            assert notification.is_valid()
            count += 1  # never answered: the next step of the loop answers EPERM
    assert count == 2
    assert reports[0]["after"] == [-errno.EPERM, -errno.EPERM]
    await notifications.aclose()
    assert notifications.fd == -1
    assert os.listdir(tmp_path) == []


async def test_a_notification_whose_caller_died_is_not_an_error(tmp_path: Path) -> None:
    child = Child([f"mkdir:{tmp_path / 'a'}"])
    async with Notifications(child.listener()) as notifications:
        child.go()
        notification = await notifications.__anext__()
        child.process.kill()
        await anyio.to_thread.run_sync(child.process.wait)
        assert not notification.is_valid()
        with pytest.raises(ProcessLookupError):
            notification.read_string(notification.args[0])
        assert notification.respond(errno=errno.EPERM) is False
        with pytest.raises(RuntimeError, match="already answered"):
            notification.continue_()
        with pytest.raises(StopAsyncIteration):
            await notifications.__anext__()
    assert child.process.stdout is not None
    child.process.stdout.close()


async def test_a_handler_can_install_an_fd_in_the_caller() -> None:
    """Emulation: the handler opens something the container may not, and hands over the fd."""
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_NOTIFY"}],
    }
    child = Child(["readfd:acct"], profile)
    read, write = os.pipe()
    os.write(write, b"from the handler")
    os.close(write)
    try:
        async with Notifications(child.listener()) as notifications:
            child.go()
            async for notification in notifications:
                assert notification.syscall_name == "acct"
                number = notification.add_fd(read, cloexec=True)
                assert number >= 3
                assert notification.respond(value=number)
                break
    finally:
        os.close(read)
    assert (await child.report())["after"] == ["from the handler"]


async def test_runc_agent_protocol_hands_over_state_and_listener(tmp_path: Path) -> None:
    """What runc sends to listenerPath: one connection, the state JSON and seccompFd."""
    socket_path = str(tmp_path / "agent.sock")
    state = {
        "ociVersion": "1.0.2",
        "id": "c1",
        "status": "creating",
        "pid": 1,
        "bundle": "/b",
        "annotations": {"k": "v"},
    }
    child = Child([f"mkdir:{tmp_path / 'x'}"])
    received: list[Any] = []

    async def agent(listener: Any, task_status: Any) -> None:
        task_status.started()
        async with listener:
            stream = await listener.accept()
            async with stream:
                message, fds = await receive_process_state(stream)
            received.append(message)
            async with Notifications(fds[0]) as notifications:
                async for notification in notifications:
                    notification.respond(errno=errno.ENOSPC)
                    break

    async with anyio.create_task_group() as group:
        listener = await anyio.create_unix_listener(socket_path)
        await group.start(agent, listener)
        fd = child.listener()
        try:
            message = process_state(state, pid=child.process.pid, metadata="MKNOD=/dev/null")
            await send_to_agent(socket_path, message, fd)
        finally:
            os.close(fd)
        child.go()
    assert (await child.report())["after"] == [-errno.ENOSPC]
    assert received == [
        {
            "ociVersion": "1.0.2",
            "fds": ["seccompFd"],
            "pid": child.process.pid,
            "metadata": "MKNOD=/dev/null",
            "state": {**state, "pid": child.process.pid},
        }
    ]


async def test_an_unreachable_agent_names_listener_path(tmp_path: Path) -> None:
    read, write = os.pipe()
    try:
        with pytest.raises(AgentError, match=r"listenerPath\): No such file") as caught:
            await send_to_agent(str(tmp_path / "none.sock"), {}, read)
        assert caught.value.errno == errno.ENOENT
        assert caught.value.filename == str(tmp_path / "none.sock")
    finally:
        os.close(read)
        os.close(write)
