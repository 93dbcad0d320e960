"""spawn(seccomp_handler=...): SCMP_ACT_NOTIFY answered in the caller's event loop.

Real containers, asyncio and trio callers (the anyio_backend fixture), both
points where the init loads the filter (noNewPrivileges or not).
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Any

import anyio
import pytest

from asyncinit import PIPE, ConfigError, InitError, SeccompHandlerError, spawn
from asyncinit.seccomp import Notification
from tests.support.containers import MakeConfig, needs_root, run
from tests.support.seccomp import mkdir_path

pytestmark = [pytest.mark.integration, pytest.mark.anyio, needs_root]

NOTIFY_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
}
MKDIRS = (
    "mkdir /dev/shm/denied; echo denied=$?; mkdir /dev/shm/ok; echo ok=$?;"
    " test -d /dev/shm/denied; echo denied_exists=$?"
)


def notify(config: dict[str, Any], profile: dict[str, Any], nnp: bool = True) -> None:
    config["linux"]["seccomp"] = profile
    config["process"]["noNewPrivileges"] = nnp


def listeners() -> list[str]:
    """Our fds that are seccomp listeners (anon_inode:seccomp notify)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "seccomp" in os.readlink(f"/proc/self/fd/{fd}"):
                found.append(fd)
        except FileNotFoundError:
            pass
    return found


@pytest.mark.parametrize("nnp", [True, False], ids=["no_new_privs", "privileged-load"])
async def test_handler_fails_one_mkdir_with_its_errno_and_lets_others_run(
    make_config: MakeConfig, nnp: bool
) -> None:
    config = make_config("sh", "-c", MKDIRS)
    notify(config, NOTIFY_MKDIR, nnp)
    seen: list[bytes] = []
    caller = threading.get_ident()

    async def handler(call: Notification) -> None:
        assert threading.get_ident() == caller  # the caller's event loop, not a thread
        path = mkdir_path(call)
        seen.append(path)
        if path == b"/dev/shm/denied":
            call.respond(errno=errno.ENOSPC)
        else:
            call.continue_()

    with anyio.fail_after(60):
        code, out, err = await run(config, seccomp_handler=handler)
    assert code == 0, err
    assert out.split() == ["denied=1", "ok=0", "denied_exists=1"]
    assert "No space left on device" in err
    assert seen == [b"/dev/shm/denied", b"/dev/shm/ok"]
    assert listeners() == []  # the listener was closed with the container


async def test_handler_emulates_a_syscall_with_a_value(make_config: MakeConfig) -> None:
    """respond(value=0): the syscall "succeeds" without running."""
    config = make_config("sh", "-c", "mkdir /dev/shm/x; echo mkdir=$?; test -d /dev/shm/x; echo $?")
    notify(config, NOTIFY_MKDIR)

    async def handler(call: Notification) -> None:
        await anyio.sleep(0.01)  # an awaiting handler: the workload simply waits
        call.respond(value=0)

    code, out, _ = await run(config, seccomp_handler=handler)
    assert (code, out.split()) == (0, ["mkdir=0", "1"])


async def test_an_unanswered_call_fails_with_eperm(make_config: MakeConfig) -> None:
    config = make_config("sh", "-c", "mkdir /dev/shm/x; echo mkdir=$?; test -d /dev/shm/x; echo $?")
    notify(config, NOTIFY_MKDIR)

    async def handler(call: Notification) -> None:
        pass

    code, out, err = await run(config, seccomp_handler=handler)
    assert (code, out.split()) == (0, ["mkdir=1", "1"])
    assert "Operation not permitted" in err


async def test_a_raising_handler_kills_the_container_and_wait_raises(
    make_config: MakeConfig,
) -> None:
    config = make_config("sh", "-c", "mkdir /dev/shm/x; echo survived")
    notify(config, NOTIFY_MKDIR)

    async def handler(call: Notification) -> None:
        raise LookupError("no policy for", mkdir_path(call))

    container = await spawn(config, stdout=PIPE, seccomp_handler=handler)
    output = b""
    with anyio.fail_after(30):
        async with container:
            assert container.stdout is not None
            async for chunk in container.stdout:
                output += chunk
            with pytest.raises(SeccompHandlerError) as caught:
                await container.wait()
    assert isinstance(caught.value.__cause__, LookupError)
    assert output == b""  # the mkdir never returned: the container was killed
    assert container.returncode == 137
    assert listeners() == []


@pytest.mark.parametrize("answer", ["continue", "deny"])
async def test_notifications_during_the_start_are_answered(
    make_config: MakeConfig, answer: str
) -> None:
    """execve itself notified: spawn() needs the handler before it returns."""
    config = make_config("true")
    notify(
        config,
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_NOTIFY"}],
        },
    )
    calls: list[str | None] = []

    async def handler(call: Notification) -> None:
        calls.append(call.syscall_name)
        if answer == "continue":
            call.continue_()
        else:
            call.respond(errno=errno.EACCES)

    with anyio.fail_after(60):
        if answer == "continue":
            code, _, _ = await run(config, seccomp_handler=handler)
            assert code == 0
        else:
            with pytest.raises(InitError, match="execve") as caught:
                await run(config, seccomp_handler=handler)
            assert caught.value.errno == errno.EACCES
    assert calls[0] == "execve"


async def test_handler_misuse_is_a_config_error(make_config: MakeConfig) -> None:
    async def handler(call: Notification) -> None:
        call.continue_()

    config = make_config("true")
    with pytest.raises(ConfigError, match=r"linux\.seccomp: seccomp_handler needs a profile"):
        await spawn(config, seccomp_handler=handler)
    notify(config, {"defaultAction": "SCMP_ACT_ALLOW"})
    with pytest.raises(ConfigError, match=r"linux\.seccomp: seccomp_handler needs a profile"):
        await spawn(config, seccomp_handler=handler)
    notify(config, {**NOTIFY_MKDIR, "listenerPath": "/run/agent.sock"})
    with pytest.raises(
        ConfigError, match=r"linux\.seccomp\.listenerPath: not with seccomp_handler"
    ):
        await spawn(config, seccomp_handler=handler)


async def test_a_handler_still_deciding_is_stopped_with_the_container(
    make_config: MakeConfig,
) -> None:
    """Killed while the handler awaits: wait() returns, the call and the listener are gone."""
    config = make_config("mkdir", "/dev/shm/x")
    notify(config, NOTIFY_MKDIR)
    deciding = anyio.Event()
    cancelled: list[bool] = []

    async def handler(call: Notification) -> None:
        deciding.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise

    container = await spawn(config, seccomp_handler=handler)
    with anyio.fail_after(30):
        async with container:
            await deciding.wait()
            container.kill()
            assert await container.wait() == 137
    assert cancelled == [True]
    assert listeners() == []
