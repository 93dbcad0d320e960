"""Rootless containers: from an unprivileged uid on this machine, and from root.

The unprivileged runs use a uid no one has (no passwd entry, no process), no
capabilities and no groups, exactly what ``runc spec --rootless`` expects.
``spawn_as`` runs ``asyncinit.spawn`` in such a process (the fork server and
its containers are its children), after giving it the bundle.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncinit.config import default_spec_dict
from tests.support.containers import MakeConfig, needs_root, run
from tests.support.host import host_mounts
from tests.support.hostile import (
    give_to,
    probe_paths_script,
    processes_of,
    spawn_as,
    unused_uid,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.anyio,
    needs_root,
    # One caller loop: what a stranger can do does not depend on the caller's loop.
    pytest.mark.caller_loop("asyncio"),
    # Other uids (and mapped roots) must reach the bundle.
    pytest.mark.public_bundle,
]


@pytest.fixture
def stranger() -> Iterator[int]:
    """An unprivileged uid; nothing of it may be left running afterwards."""
    uid = unused_uid()
    yield uid
    deadline = time.monotonic() + 10
    while processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes_of(uid), "a process of the unprivileged user outlived the test"


def rootless_config(bundle: Path, uid: int, *args: str) -> dict[str, Any]:
    """``runc spec --rootless`` as ``uid`` would write it, running ``args``."""
    config = default_spec_dict(rootless=True)
    config["process"]["terminal"] = False
    config["process"]["args"] = list(args)
    config["root"]["path"] = str(bundle / "rootfs")
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    return config


_ROOTLESS_REPORT = """
id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups
stat -c '%n %t:%T' /dev/null /dev/zero /dev/tty
grep -c ' /dev/null ' /proc/self/mountinfo
cat /proc/sys/user/max_user_namespaces /proc/self/oom_score_adj
touch /sys/fs/cgroup/probe 2>/dev/null && echo cgroup-root-writable
for d in /sys/fs/cgroup/*/; do mkdir "$d/probe" 2>/dev/null && echo "$d writable"; done
touch /sys/probe 2>/dev/null && echo sys-writable
echo end
""" + probe_paths_script(["/proc/keys", "/sys/firmware"], ["/proc/sys", "/proc/sysrq-trigger"])


def check_rootless_report(out: str, uid: int, setgroups: str, write_error: str) -> None:
    lines = out.splitlines()
    assert lines[:2] == ["0", "0"]
    assert lines[2].split() == ["0", str(uid), "1"]
    assert lines[3].split() == ["0", str(uid), "1"]
    assert lines[4] == setgroups  # the kernel requires "deny" from an unprivileged writer
    assert lines[5:8] == ["/dev/null 1:3", "/dev/zero 1:5", "/dev/tty 5:0"]
    assert lines[8] == "1"  # bind-mounted from the host, mknod being refused
    assert lines[9] == "10"  # user.max_user_namespaces, set in the container's own user ns
    assert lines[10] == "100"  # oomScoreAdj, though the init's /proc files belong to root
    assert lines[11] == "end", "a cgroup or /sys path was writable"
    assert lines[12:14] == ["/proc/keys file 0", "/sys/firmware dir 0"]
    assert lines[14].startswith("/proc/sys ro ")
    # Kernel 6.18 hides /proc/sysrq-trigger from a user namespace; 6.1 shows it, and
    # then it is mounted read-only and a write fails: EACCES first for a mapped
    # stranger (the host's root owns it, mode 0200), EROFS for root mapped to root.
    assert lines[15] in (
        "/proc/sysrq-trigger unmounted absent",
        f"/proc/sysrq-trigger ro {write_error}",
    )


async def test_rootless_spec_from_an_unprivileged_uid(bundle: Path, stranger: int) -> None:
    host_limit = Path("/proc/sys/user/max_user_namespaces").read_text()
    config = rootless_config(bundle, stranger, "sh", "-c", _ROOTLESS_REPORT)
    config["linux"]["sysctl"] = {"user.max_user_namespaces": "10"}
    config["process"]["oomScoreAdj"] = 100
    give_to(bundle, stranger)
    result = spawn_as(stranger, bundle, config)
    assert result["error"] is None, result
    assert result["code"] == 0, result
    check_rootless_report(result["out"], stranger, "deny", "Permission denied")
    assert Path("/proc/sys/user/max_user_namespaces").read_text() == host_limit


@pytest.mark.parametrize("who", ["unprivileged", "root"])
async def test_sysfs_falls_back_to_a_readonly_host_sys(
    who: str, bundle: Path, stranger: int
) -> None:
    """No network namespace of its own: the user namespace may not mount sysfs."""
    uid = stranger if who == "unprivileged" else os.geteuid()
    hierarchies = [
        m.point for m in host_mounts() if m.fstype.startswith("cgroup") and m.point[:5] == "/sys/"
    ]
    probed = hierarchies[0] if hierarchies else "/sys"  # a writable cgroupfs: CVE-2023-25809
    script = (
        'awk \'$5 ~ "^/sys" {split($6, o, ","); print $5, o[1]}\' /proc/self/mountinfo'
        f" | sort -u; touch {probed}/probe 2>&1; true"
    )
    config = rootless_config(bundle, uid, "sh", "-c", script)
    for m in config["mounts"]:
        if m["destination"] == "/sys":  # runc's default sysfs entry, not the rootless rbind
            m.update(type="sysfs", source="sysfs", options=["nosuid", "noexec", "nodev", "ro"])
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]
    if who == "unprivileged":
        give_to(bundle, uid)
        result = spawn_as(uid, bundle, config)
        assert result["error"] is None, result
        code, out = result["code"], result["out"]
    else:
        code, out, _ = await run(config)
    assert code == 0
    lines = out.splitlines()
    mounts = dict(line.split() for line in lines[:-1])
    assert mounts["/sys"] == "ro"
    assert set(hierarchies) <= set(mounts)  # the host's cgroups came along with the bind...
    assert set(mounts.values()) == {"ro"}  # ...read-only, every submount of it
    assert "Read-only file system" in lines[-1]


async def test_unprivileged_mapping_of_other_ids_is_refused(bundle: Path, stranger: int) -> None:
    config = rootless_config(bundle, stranger, "true")
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    give_to(bundle, stranger)
    result = spawn_as(stranger, bundle, config)
    assert result["error_type"] == "ConfigError"
    assert f"linux.uidMappings: without root only your own id ({stranger})" in result["error"]


async def test_rootless_spec_from_root(bundle: Path) -> None:
    """``runc spec --rootless`` run by root: a user namespace mapping root to root."""
    config = rootless_config(bundle, os.geteuid(), "sh", "-c", _ROOTLESS_REPORT)
    config["linux"]["sysctl"] = {"user.max_user_namespaces": "10"}
    config["process"]["oomScoreAdj"] = 100
    code, out, err = await run(config)
    assert code == 0, err
    # runc leaves setgroups allowed for root too
    check_rootless_report(out, os.geteuid(), "allow", "Read-only file system")


async def test_root_with_a_user_namespace_range(make_config: MakeConfig, bundle: Path) -> None:
    """Root mapping a whole range: setgroups stays allowed, devices are still bound."""
    config = make_config("sh", "-c", "cat /proc/self/setgroups; id -G; stat -c %t:%T /dev/full")
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["process"]["user"]["additionalGids"] = [5, 10]
    code, out, err = await run(config)
    assert code == 0, err
    assert out.split() == ["allow", "0", "5", "10", "1:7"]
