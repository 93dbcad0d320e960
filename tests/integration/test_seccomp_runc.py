"""Differential against runc 1.1.5: the same profile, the same busybox applets, the same errnos.

runc loads the profile in a busybox container (all capabilities, so that every
refusal comes from the filter); asyncinit's compiled program is loaded in a
probe child (the init's loader, noNewPrivileges as in runc's default config,
in private uts and mount namespaces) that runs the same script with the same
static busybox. Each line is "applet exit-status message". runc also sends its
seccomp agent message to our agent side, which answers the container's
mkdir and finds the message identical to what ``process_state`` builds. When asyncinit
loads filters in the init, tests/integration/test_seccomp_container.py will compare
containers end to end.
"""

from __future__ import annotations

import copy
import errno
import os
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

from asyncinit.config import CAPABILITIES
from asyncinit.seccomp import (
    Notifications,
    compile_profile,
    parse_profile,
    process_state,
    receive_process_state,
)
from tests.support.configs import base_config
from tests.support.containers import needs_root
from tests.support.runc import needs_runc, runc_run
from tests.support.seccomp import moby_default, probe

pytestmark = [
    pytest.mark.integration,
    needs_root,
    needs_runc,
]

SCRIPT = """
bb=/bin/busybox
probe() { name=$1; shift; out=$("$@" 2>&1); rc=$?; echo "$name $rc" $out; }
probe mkdir $bb mkdir made
probe rmdir $bb rmdir existing
probe unshare $bb unshare -u true
probe mount $bb mount -t tmpfs none mnt
probe hostname $bb hostname seccomp-probe
probe linux32 $bb linux32 true
probe chroot $bb chroot . /bin/busybox true
probe status $bb grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status
probe ls $bb ls -d mnt
"""


def profile() -> dict[str, Any]:
    """moby's default for runc's default capabilities, plus rules with errnoRet."""
    data = moby_default()
    data["syscalls"] = [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122},
        {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 39},
        *data["syscalls"],
    ]
    return data


def host_bounding() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))


def prepare(workdir: Path) -> None:
    (workdir / "mnt").mkdir(parents=True)
    (workdir / "existing").mkdir()


def test_same_profile_same_errnos_as_runc(tmp_path: Path, busybox_image: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(busybox_image, bundle / "rootfs", symlinks=True)
    prepare(bundle / "rootfs" / "work")
    config = copy.deepcopy(base_config("/bin/busybox", "sh", "-c", SCRIPT))
    config["root"] = {"path": str(bundle / "rootfs"), "readonly": False}
    config["process"]["cwd"] = "/work"
    every_cap = sorted(name for name, bit in CAPABILITIES.items() if host_bounding() >> bit & 1)
    config["process"]["capabilities"] = dict.fromkeys(
        ("bounding", "effective", "permitted"), every_cap
    )
    config["linux"]["seccomp"] = profile()
    expected = runc_run(bundle, config).splitlines()

    ours = tmp_path / "ours"
    prepare(ours)
    plan = compile_profile(parse_profile(profile())).to_plan()
    code, report = probe(
        plan,
        nnp=True,
        private_namespaces=True,
        cwd=str(ours),
        run=["/bin/busybox", "sh", "-c", SCRIPT],
    )
    assert code == 0, report
    assert report["run"][0] == 0
    got = report["run"][1].splitlines()
    assert got == expected
    by_applet = {line.split()[0]: line for line in got}
    assert by_applet["mkdir"].startswith("mkdir 1 mkdir: can't create directory 'made': Disk quota")
    assert "Directory not empty" in by_applet["rmdir"]
    assert "Operation not permitted" in by_applet["unshare"]
    assert by_applet["linux32"] == "linux32 0"
    assert by_applet["status"] == "status 0 NoNewPrivs: 1 Seccomp: 2"
    assert sorted(os.listdir(ours)) == ["existing", "mnt"]


NOTIFY_SCRIPT = "/bin/busybox mkdir /work/agent-made 2>&1; echo rc=$?"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_our_agent_side_speaks_runcs_protocol(tmp_path: Path, busybox_image: Path) -> None:
    """runc sends its ContainerProcessState to our receiver; ours has the same shape."""
    bundle = tmp_path / "bundle"
    shutil.copytree(busybox_image, bundle / "rootfs", symlinks=True)
    (bundle / "rootfs" / "work").mkdir()
    socket_path = str(tmp_path / "agent.sock")
    config = copy.deepcopy(base_config("/bin/busybox", "sh", "-c", NOTIFY_SCRIPT))
    config["root"] = {"path": str(bundle / "rootfs"), "readonly": False}
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket_path,
        "listenerMetadata": "from-the-test",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
    }
    received: list[dict[str, Any]] = []

    async def agent(listener: Any, *, task_status: Any) -> None:
        task_status.started()
        async with listener:
            stream = await listener.accept()
            async with stream:
                message, fds = await receive_process_state(stream)
        received.append(message)
        async with Notifications(fds[0]) as notifications:
            async for call in notifications:
                assert call.syscall_name in ("mkdir", "mkdirat")
                call.respond(errno=errno.EROFS)

    async with anyio.create_task_group() as group:
        await group.start(agent, await anyio.create_unix_listener(socket_path))
        output = await anyio.to_thread.run_sync(runc_run, bundle, config)
    assert (
        output == "mkdir: can't create directory '/work/agent-made': Read-only file system\nrc=1\n"
    )
    (message,) = received
    ours = process_state(message["state"], pid=message["pid"], metadata="from-the-test")
    assert message == ours
    assert message["fds"] == ["seccompFd"]
    assert message["state"]["status"] == "creating"
    assert message["metadata"] == "from-the-test"
