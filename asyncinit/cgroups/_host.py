"""What the host offers: cgroup v1 hierarchies or the v2 unified one, and where we are.

The driver is picked as runc picks it: a ``cgroup2`` filesystem mounted on
/sys/fs/cgroup means v2 (unified); anything else is v1, and on a hybrid host
(v1 controllers plus an empty cgroup2 at /sys/fs/cgroup/unified) the v1
hierarchies carry every controller, so v1 it is.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from typing import Final

import attrs

CGROUP_ROOT: Final = "/sys/fs/cgroup"

#: The v1 hierarchies runc's cgroupfs driver creates a directory in, by the
#: controller (or ``name=``) that identifies them.  Others are left alone.
V1_SUBSYSTEMS: Final = (
    "cpuset",
    "devices",
    "memory",
    "cpu",
    "cpuacct",
    "pids",
    "blkio",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "freezer",
    "rdma",
    "misc",
    "name=systemd",
)


@attrs.frozen
class Hierarchy:
    """A mounted v1 hierarchy: mount point, the cgroup its root shows, controllers."""

    mount: str
    root: str
    controllers: tuple[str, ...]


@attrs.frozen
class Host:
    """The cgroup setup of this machine, as seen from this process."""

    unified: bool
    #: v1 hierarchies (empty on a pure v2 host)
    hierarchies: tuple[Hierarchy, ...] = ()
    #: the v2 mount point (pure v2) or None
    v2_mount: str | None = None
    #: the v2 controllers the root offers (``cgroup.controllers`` of the mount)
    v2_controllers: tuple[str, ...] = ()
    #: controller (``""`` for v2) -> this process's cgroup (``/proc/self/cgroup``)
    own: Mapping[str, str] = attrs.field(factory=dict)
    #: True when this process runs in a user namespace other than the initial one
    in_userns: bool = False

    @property
    def version(self) -> int:
        return 2 if self.unified else 1

    def hierarchy(self, controller: str) -> Hierarchy | None:
        return next((h for h in self.hierarchies if controller in h.controllers), None)

    @property
    def v1_controllers(self) -> frozenset[str]:
        return frozenset(c for h in self.hierarchies for c in h.controllers)


def _mounts(mountinfo: str) -> tuple[list[Hierarchy], str | None]:
    hierarchies: list[Hierarchy] = []
    v2_mount = None
    for line in mountinfo.splitlines():
        fields = line.split()
        separator = fields.index("-")
        root, point, fstype = fields[3], fields[4], fields[separator + 1]
        if fstype == "cgroup2" and point == CGROUP_ROOT:
            v2_mount = point
        elif fstype == "cgroup":
            options = fields[separator + 3].split(",")
            controllers = tuple(o for o in options if o in V1_SUBSYSTEMS)
            if controllers and not any(controllers == h.controllers for h in hierarchies):
                hierarchies.append(Hierarchy(point, root, controllers))
    return hierarchies, v2_mount


def _own_cgroups(text: str) -> dict[str, str]:
    own: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    return own


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _in_userns() -> bool:
    """runc's RunningInUserNS: the initial namespace maps all 2^32 ids from 0."""
    try:
        fields = _read("/proc/self/uid_map").split()
    except OSError:
        return False
    return fields[:3] != ["0", "0", "4294967295"]


def detect_host() -> Host:
    """Read the mount table and /proc/self/cgroup once."""
    hierarchies, v2_mount = _mounts(_read("/proc/self/mountinfo"))
    own = _own_cgroups(_read("/proc/self/cgroup"))
    if v2_mount is None:
        return Host(False, tuple(hierarchies), None, (), own, _in_userns())
    controllers = tuple(_read(posixpath.join(v2_mount, "cgroup.controllers")).split())
    return Host(True, (), v2_mount, controllers, own, _in_userns())


def clean_path(path: str) -> str:
    """runc's CleanPath: lexically cleaned; a relative path cannot climb out with ``..``."""
    if not path:
        return ""
    path = posixpath.normpath(path)
    if not path.startswith("/"):
        path = posixpath.relpath(posixpath.normpath("/" + path), "/")
    return posixpath.normpath(path)


def v1_directory(host: Host, hierarchy: Hierarchy, inner: str) -> str:
    """Where cgroup ``inner`` lives in ``hierarchy`` (runc's fs ``subsysPath``).

    Absolute: from the hierarchy's root.  Relative: under this process's own
    cgroup in that hierarchy (the mount's root subtracted, for nested setups).
    """
    if inner.startswith("/"):
        return posixpath.join(hierarchy.mount, inner.lstrip("/"))
    controller = hierarchy.controllers[0]
    key = controller if controller in host.own else ",".join(hierarchy.controllers)
    own = host.own.get(key, "/")
    relative = posixpath.relpath(own, hierarchy.root) if own != hierarchy.root else "."
    return posixpath.normpath(posixpath.join(hierarchy.mount, relative, inner))


def v2_directory(host: Host, inner: str) -> str:
    """Where cgroup ``inner`` lives on v2 (runc's fs2 ``defaultDirPath``).

    Relative paths go under the *parent* of our own cgroup: ours holds processes,
    so the no-internal-process rule would forbid enabling controllers below it.
    """
    mount = host.v2_mount or CGROUP_ROOT
    if inner.startswith("/"):
        return posixpath.join(mount, inner.lstrip("/"))
    own = posixpath.dirname(host.own.get("", "/"))
    return posixpath.normpath(posixpath.join(mount, own.lstrip("/"), inner))


def is_cgroup2(path: str = CGROUP_ROOT) -> bool:
    """statfs magic check, as runc's IsCgroup2UnifiedMode."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        from .._syscalls._fds import fstatfs_type

        return fstatfs_type(fd) == 0x63677270
    finally:
        os.close(fd)
