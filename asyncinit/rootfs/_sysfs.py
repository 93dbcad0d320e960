"""The sysfs mount type, with the rootless fallback to the host's /sys.

The kernel lets a user namespace mount sysfs only if it also owns the network
namespace (sysfs shows that namespace's devices).  A rootless config without a
network namespace, or one joining the host's, gets EPERM; like runc we then
bind the host's /sys instead, read-only.  Read-only *recursively*: the bind
drags in every mount under the host's /sys, and /sys/fs/cgroup among them must
never be writable from the container (CVE-2023-25809).
"""

from __future__ import annotations

import errno
import os

from .._fs._fdmount import bind_onto
from .._fs._path import O_PATH_DIR, fd_path
from .._plan import MountPlan
from .._syscalls._mount import (
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    mount,
)

_READONLY_BIND = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC


def mount_sysfs(target: int, m: MountPlan, *, user_namespace: bool) -> None:
    """A fresh sysfs on ``target``, or in a user namespace that may not, the host's /sys."""
    try:
        mount(
            m["source"] or "sysfs",
            fd_path(target),
            "sysfs",
            m["flags"],
            m["data"],
            display_target=m["destination"],
        )
        return
    except PermissionError as exc:
        if not user_namespace or exc.errno != errno.EPERM:
            raise
    host_sys = os.open("/sys", O_PATH_DIR | os.O_CLOEXEC)
    try:
        bind_onto(
            host_sys, target, recursive=True, attr_set=_READONLY_BIND, display_path=m["destination"]
        )
    finally:
        os.close(host_sys)
