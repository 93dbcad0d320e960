"""Integration: linux.seccomp in real containers (compile in the parent, load in the init)."""

from __future__ import annotations

import errno
import signal
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from asyncinit import ConfigError, InitError
from asyncinit.seccomp import Notifications, receive_process_state
from tests.support.containers import MakeConfig, needs_root, run
from tests.support.seccomp import moby_default

pytestmark = [pytest.mark.integration, pytest.mark.anyio, needs_root]

#: one line per busybox command: its exit status (the errno text goes to stderr)
PROBES = (
    "unshare -m true; echo unshare=$?; "
    "mount -t tmpfs none /tmp; echo mount=$?; "
    "grep Seccomp: /proc/self/status; echo hello"
)


def with_profile(config: dict[str, Any], profile: dict[str, Any], nnp: bool = True) -> None:
    config["linux"]["seccomp"] = profile
    config["process"]["noNewPrivileges"] = nnp


@pytest.mark.parametrize("nnp", [True, False], ids=["no_new_privs", "privileged-load"])
@pytest.mark.parametrize("mode", ["exec", "supervise"])
async def test_moby_default_denies_unshare_and_mount_and_busybox_works(
    make_config: MakeConfig, nnp: bool, mode: str
) -> None:
    # CAP_SYS_ADMIN held: without the filter unshare and mount would succeed.
    config = make_config("sh", "-c", PROBES)
    config["process"]["capabilities"] = {
        key: ["CAP_SYS_ADMIN", "CAP_KILL"] for key in ("bounding", "effective", "permitted")
    }
    with_profile(config, moby_default(caps=["CAP_KILL"]), nnp)
    code, out, err = await run(config, init=mode)
    assert code == 0, err
    assert "unshare=1" in out, out
    assert "mount=1" in out, out
    assert "Operation not permitted" in err
    assert "Seccomp:\t2" in out
    assert out.rstrip().endswith("hello")


async def test_without_the_profile_the_same_probes_succeed(make_config: MakeConfig) -> None:
    """The control for the test above: the EPERMs come from the filter."""
    config = make_config("sh", "-c", PROBES)
    config["process"]["capabilities"] = {
        key: ["CAP_SYS_ADMIN"] for key in ("bounding", "effective", "permitted")
    }
    code, out, err = await run(config)
    assert code == 0, err
    assert "unshare=0" in out
    assert "mount=0" in out
    assert "Seccomp:\t0" in out


async def test_errno_ret_comes_back(make_config: MakeConfig) -> None:
    config = make_config("sh", "-c", "mkdir /tmp/x; echo mkdir=$?")
    with_profile(
        config,
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}
            ],
        },
    )
    code, out, err = await run(config)
    assert code == 0
    assert "mkdir=1" in out
    assert "Disk quota exceeded" in err  # EDQUOT is 122


@pytest.mark.parametrize("mode", ["exec", "supervise"])
async def test_kill_process_kills_the_workload(make_config: MakeConfig, mode: str) -> None:
    config = make_config("mkdir", "/tmp/x")
    with_profile(
        config,
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}],
        },
    )
    code, _, _ = await run(config, init=mode)
    assert code == 128 + signal.SIGSYS


@pytest.mark.parametrize("nnp", [True, False], ids=["no_new_privs", "privileged-load"])
async def test_a_profile_denying_execve_fails_the_start_clearly(
    make_config: MakeConfig, nnp: bool
) -> None:
    config = make_config("true")
    with_profile(
        config,
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["execve", "execveat"], "action": "SCMP_ACT_ERRNO"}],
        },
        nnp,
    )
    with anyio.fail_after(30):
        with pytest.raises(InitError, match="execve") as caught:
            await run(config)
    assert caught.value.errno == errno.EPERM


async def test_bad_profiles_are_config_errors_naming_the_field(make_config: MakeConfig) -> None:
    config = make_config("true")
    with_profile(
        config,
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}],
        },
    )
    with pytest.raises(ConfigError, match=r"linux\.seccomp\.syscalls\[0\]\.action"):
        await run(config)
    with_profile(
        config,
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}],
        },
    )
    with pytest.raises(ConfigError, match=r"linux\.seccomp\.listenerPath: required"):
        await run(config)


@pytest.mark.parametrize("nnp", [True, False], ids=["no_new_privs", "privileged-load"])
async def test_listener_path_agent_answers_one_mkdir(
    make_config: MakeConfig, tmp_path: Path, nnp: bool
) -> None:
    """runc's procSeccomp: the init's listener reaches the agent with the state."""
    socket_path = str(tmp_path / "agent.sock")
    config = make_config(
        "sh", "-c", "mkdir /dev/shm/denied; echo denied=$?; mkdir /dev/shm/ok; echo ok=$?"
    )
    with_profile(
        config,
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": socket_path,
            "listenerMetadata": "hello-agent",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
        },
        nnp,
    )
    received: list[dict[str, Any]] = []

    async def agent(task_status: Any) -> None:
        async with await anyio.create_unix_listener(socket_path) as listener:
            task_status.started()
            stream = await listener.accept()
            assert isinstance(stream, anyio.abc.UNIXSocketStream)
            async with stream:
                message, fds = await receive_process_state(stream)
            received.append(message)
            async with Notifications(fds[0]) as notifications:
                async for call in notifications:
                    path = call.read_string(call.args[1 if call.syscall_name == "mkdirat" else 0])
                    if path == b"/dev/shm/denied":
                        call.respond(errno=errno.ENOSPC)
                    else:
                        call.continue_()

    async with anyio.create_task_group() as group:
        await group.start(agent)
        with anyio.fail_after(60):
            code, out, err = await run(config)
        group.cancel_scope.cancel()
    assert code == 0, err
    assert "denied=1" in out, err
    assert "ok=0" in out, err
    assert "No space left on device" in err
    assert received[0]["fds"] == ["seccompFd"]
    assert received[0]["metadata"] == "hello-agent"
    assert received[0]["state"]["status"] == "creating"


async def test_an_unreachable_agent_fails_the_start(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    config = make_config("true")
    with_profile(
        config,
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": str(tmp_path / "nobody.sock"),
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}],
        },
    )
    with anyio.fail_after(30):
        with pytest.raises(InitError, match="listenerPath") as caught:
            await run(config)
    assert caught.value.errno == errno.ENOENT
