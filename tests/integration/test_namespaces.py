"""Integration: the init under the `unshare` command, user namespaces, namespace isolation."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from asyncinit import ContainerStartError, InitError, spawn
from asyncinit.config import spec_from_dict
from asyncinit.parent import _launcher
from asyncinit.parent._compile import compile_spec
from asyncinit.sync_pipe import Channel, Kind, PeerGone, socketpair
from tests.support import CHECKOUT
from tests.support.containers import MakeConfig, needs_root, run
from tests.support.hooks import gone
from tests.support.host import traversable_by_everyone

pytestmark = [pytest.mark.integration, pytest.mark.anyio, needs_root]

async def test_init_started_by_the_unshare_command(
    make_config: MakeConfig, bundle: Path, anyio_backend: str
) -> None:
    """Any parent holding the sync socket can drive the init: here util-linux's unshare."""
    config = make_config("sh", "-c", "echo pid=$$ host=$(hostname)")
    config["hostname"] = "via-unshare"
    compiled = compile_spec(spec_from_dict(config), bundle, "unshare-test")
    # the whole conversation, with the hooks and ready points
    compiled.plan["parent_hooks"] = compiled.plan["parent_rlimits"] = True
    ours, theirs = socketpair()
    command = [
        "unshare",
        "--fork",
        "--pid",
        "--mount",
        "--uts",
        "--ipc",
        "--net",
        sys.executable,
        "-m",
        "asyncinit",
        "init",
        "--sync-fd",
        str(theirs.fileno()),
        "--backend",
        anyio_backend,
    ]
    process = subprocess.Popen(
        command,
        pass_fds=[theirs.fileno()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=CHECKOUT,
    )
    theirs.close()
    channel = Channel(ours)
    seen = []
    try:
        await channel.send(Kind.PLAN, {"plan": compiled.plan, "state": {"id": "unshare-test"}})
        await channel.send(Kind.CGROUP)  # no cgroup here: the word alone releases the init
        while True:
            try:
                message = await channel.receive()
            except PeerGone:
                break
            seen.append(message.kind)
            assert message.kind != Kind.ERROR, message.fields
            if message.kind == Kind.HOOKS:
                await channel.send(Kind.HOOKS_DONE)
            elif message.kind == Kind.READY:
                await channel.send(Kind.RUN)
    finally:
        channel.close()
        out, err = process.communicate(timeout=30)
    assert seen == [Kind.HOOKS, Kind.READY, Kind.EXEC]
    assert process.returncode == 0, err
    assert out.decode().split() == ["pid=1", "host=via-unshare"]


async def test_init_exits_when_its_parent_vanishes(make_config: MakeConfig, bundle: Path) -> None:
    """EOF on the sync pipe before the plan: the init stops instead of waiting for ever."""
    ours, theirs = socketpair()
    process = subprocess.Popen(
        [
            "unshare",
            "--fork",
            "--pid",
            "--mount",
            sys.executable,
            "-m",
            "asyncinit",
            "init",
            "--sync-fd",
            str(theirs.fileno()),
        ],
        pass_fds=[theirs.fileno()],
        cwd=CHECKOUT,
    )
    theirs.close()
    ours.close()
    assert process.wait(timeout=30) == 127


async def test_user_namespace_with_id_maps(make_config: MakeConfig, bundle: Path) -> None:
    traversable_by_everyone(bundle)
    config = make_config(
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; "
        "stat -c '%u %t:%T' /dev/null; grep CapEff /proc/self/status",
    )
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    code, out, err = await run(config)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1].split() == ["0", "100000", "65536"]
    assert lines[2] == "0"
    # mknod is refused in a user namespace: the host's node is bind-mounted instead
    assert lines[3].split()[1] == "1:3"


async def test_namespaces_are_private(make_config: MakeConfig) -> None:
    script = (
        "for n in net uts ipc pid mnt; do readlink /proc/self/ns/$n; done; ip link 2>&1 | "
        "grep -c ': lo:'; cat /sys/class/net/lo/operstate"
    )
    code, out, _ = await run(make_config("sh", "-c", script))
    assert code == 0
    lines = out.splitlines()
    for line, kind in zip(lines[:5], ("net", "uts", "ipc", "pid", "mnt"), strict=True):
        assert line != os.readlink(f"/proc/self/ns/{kind}"), kind
    assert lines[5] == "1"  # only loopback in a fresh network namespace
    assert lines[6] in ("unknown", "up")  # lo is up (loopback reports "unknown")


def _has_cap_sys_resource() -> bool:
    with open("/proc/self/status") as status:
        effective = next(line for line in status if line.startswith("CapEff:")).split()[1]
    return bool(int(effective, 16) & (1 << 24))


@pytest.mark.skipif(
    not _has_cap_sys_resource(),
    reason="raising a hard limit needs CAP_SYS_RESOURCE, which this sandbox's root lacks",
)
async def test_rlimits_above_the_inherited_hard_limit_in_a_user_namespace(
    make_config: MakeConfig, bundle: Path
) -> None:
    """The parent sets process.rlimits with prlimit, as runc: the init alone could not."""
    traversable_by_everyone(bundle)
    _, inherited_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = inherited_hard + 1000
    config = make_config("sh", "-c", "ulimit -n; ulimit -Hn")
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": wanted, "hard": wanted}]
    code, out, err = await run(config)
    assert code == 0, err
    assert out.split() == [str(wanted), str(wanted)]


async def test_rlimit_above_what_the_caller_may_grant(make_config: MakeConfig) -> None:
    """Without CAP_SYS_RESOURCE nobody can raise a hard limit: a clear error names the field."""
    _, inherited_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = inherited_hard + 1000
    config = make_config("sh", "-c", "ulimit -Hn")
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": wanted, "hard": wanted}]
    if _has_cap_sys_resource():
        code, out, _ = await run(config)
        assert (code, out.strip()) == (0, str(wanted))
        return
    with pytest.raises(InitError) as caught:
        await run(config)
    assert caught.value.field == "process.rlimits"
    assert caught.value.errno == errno.EPERM
    assert caught.value.operation == "prlimit"


@pytest.mark.parametrize("path", ["direct", "intermediate"])
async def test_a_killed_fork_server_takes_its_containers(
    make_config: MakeConfig, bundle: Path, path: str
) -> None:
    """SIGKILL the fork server itself: PID 1 dies with it (PDEATHSIG), wait() says so.

    Both ways PID 1 is forked: directly, and behind an intermediate (user namespace).
    """
    config = make_config("sleep", "600")
    if path == "intermediate":
        traversable_by_everyone(bundle)
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    container = await spawn(config)
    server = _launcher.fork_server()
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    with pytest.raises(ContainerStartError, match="fork server died"):
        await container.wait()
    assert container.returncode == 137
    assert gone(container.pid)  # dead (a zombie until the host's init reaps the orphan)
    await container.aclose()  # nothing left to do, and no error
    code, _, _ = await run(make_config("true"))  # a new server serves the next spawn
    assert code == 0
