"""The config.json that ``runc spec`` (runc 1.1, Debian 12) writes, and its rootless form.

On a pure cgroup v2 host runc's example config also has a cgroup namespace.

Hardcoded rather than generated so ``asyncinit spec`` works without runc and
its output is byte-for-byte what users of runc know; the rootless variant applies
runc's ``specconv.ToRootless`` steps to it.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["default_spec_dict"]

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def _base() -> dict[str, Any]:
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": list(_CAPS),
                "effective": list(_CAPS),
                "permitted": list(_CAPS),
                "ambient": list(_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": [
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ],
            "maskedPaths": [
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }


def _to_rootless(spec: dict[str, Any]) -> None:
    """runc's ToRootless: user namespace mapping our ids, no netns, /sys bound, no cgroups."""
    linux = spec["linux"]
    namespaces = [ns for ns in linux["namespaces"] if ns["type"] not in ("network", "user")]
    linux["namespaces"] = [*namespaces, {"type": "user"}]
    mappings = {"uidMappings": os.geteuid(), "gidMappings": os.getegid()}
    rebuilt: dict[str, Any] = {}
    for key, value in linux.items():
        if key == "resources":
            continue
        if key == "namespaces":  # runc's struct order puts the mappings first
            for name, host_id in mappings.items():
                rebuilt[name] = [{"containerID": 0, "hostID": host_id, "size": 1}]
        rebuilt[key] = value
    spec["linux"] = rebuilt
    mounts = []
    for mount in spec["mounts"]:
        if os.path.normpath(mount["destination"]) == "/sys":
            mounts.append(
                {
                    "destination": "/sys",
                    "type": "none",
                    "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
                }
            )
            continue
        if "options" in mount:
            mount["options"] = [o for o in mount["options"] if not o.startswith(("gid=", "uid="))]
        mounts.append(mount)
    spec["mounts"] = mounts


def default_spec_dict(*, rootless: bool = False) -> dict[str, Any]:
    """A fresh copy of ``runc spec`` output on this host (``--rootless`` if ``rootless``).

    The rootless form maps container root to the caller's effective uid/gid, as
    runc does, so it depends on who calls it.
    """
    spec = _base()
    from ..cgroups._host import is_cgroup2

    if is_cgroup2():  # runc's specconv.Example adds one on a unified host
        spec["linux"]["namespaces"].append({"type": "cgroup"})
    if rootless:
        _to_rootless(spec)
    return spec
