"""The ``cgroup`` mount type: cgroup v2 directly, cgroup v1 as a tmpfs of binds.

asyncinit does not create cgroups (yet), so the container sees the hierarchy of
the cgroup it was started in, the way runc shows a container its own cgroup.
Which one is decided as runc does: a ``cgroup2`` filesystem on /sys/fs/cgroup
means v2 (unified); anything else means v1, and on a hybrid host (v1 hierarchies
plus a cgroup2 at /sys/fs/cgroup/unified) the container gets the v1 ones only.

A cgroup2 mount made from the initial cgroup namespace re-applies its options to
the whole hierarchy, machine-wide: a plain one clears the ``nsdelegate`` and
``memory_recursiveprot`` that systemd mounted it with, for every process on the
host. So there (a container without a cgroup namespace of its own) the host's
cgroup2 mount is bound instead, never mounted afresh (runc 1.1.5 mounts it and
clears them; runc#5258).
"""

from __future__ import annotations

import contextlib
import errno
import os

from .._fs._fdmount import new_mask_tmpfs
from .._fs._path import fd_path, mkdir_all_in_root
from .._plan import MountPlan
from .._syscalls._mount import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    attach_mount,
    mount,
)
from ._remount import remount_readonly, reopened, set_bind_flags

_CGROUP_ROOT = "/sys/fs/cgroup"
#: The inode of the initial cgroup namespace's nsfs file (PROC_CGROUP_INIT_INO, fixed).
_INITIAL_CGROUP_NS_INODE = 0xEFFFFFFB
#: runc's defaultMountFlags, which its cgroup v1 tmpfs and cgroupns mounts get.
_DEFAULT_FLAGS = MS_NOEXEC | MS_NOSUID | MS_NODEV


def _host_hierarchies() -> tuple[bool, list[tuple[str, str, str]]]:
    """(unified cgroup v2?, [(mount point, root in the hierarchy, a controller)] of v1)."""
    unified_root = False
    v1: list[tuple[str, str, str]] = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            separator = fields.index("-")
            root, point, fstype = fields[3], fields[4], fields[separator + 1]
            if fstype == "cgroup2" and point == _CGROUP_ROOT:
                unified_root = True
            elif fstype == "cgroup" and point.startswith(_CGROUP_ROOT + "/"):
                options = fields[separator + 3].split(",")
                controller = next((o for o in options if o not in ("rw", "ro")), "")
                v1.append((point, root, controller))
    return unified_root, v1


def _own_cgroups() -> dict[str, str]:
    """Each controller ("cpu", "name=systemd"...) -> this process's cgroup path."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup") as cgroups:
        for line in cgroups:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(","):
                paths[controller] = path
    return paths


def mount_cgroup(
    rootfd: int,
    target: int,
    m: MountPlan,
    *,
    cgroup_namespace: bool,
    cgroup2_path: str | None = None,
    rootless_cgroups: bool = False,
) -> None:
    """runc's mountCgroupV1/V2; ``cgroup_namespace``: the container has its own;
    ``cgroup2_path``, ``rootless_cgroups``: the v2 fallback's (see :func:`_bind_cgroup2`)."""
    unified, hierarchies = _host_hierarchies()
    if unified or not hierarchies:
        fallback = cgroup2_path if cgroup_namespace else None
        _mount_cgroup_v2(
            rootfd, target, m, host_mount=unified, own=fallback, rootless=rootless_cgroups
        )
    else:
        _mount_cgroup_v1(rootfd, target, m, hierarchies, cgroup_namespace=cgroup_namespace)


def _in_initial_cgroup_namespace() -> bool:
    return os.stat("/proc/thread-self/ns/cgroup").st_ino == _INITIAL_CGROUP_NS_INODE


def _mount_cgroup_v2(
    rootfd: int, target: int, m: MountPlan, *, host_mount: bool, own: str | None, rootless: bool
) -> None:
    """A fresh cgroup2 where that is harmless, else a bind of the host's (``host_mount``)."""
    if not (host_mount and _in_initial_cgroup_namespace()):
        try:
            mount(
                m["source"] or "cgroup",
                fd_path(target),
                "cgroup2",
                m["flags"],
                m["data"],
                display_target=m["destination"],
            )
            return
        except OSError as exc:
            # runc's fallback: in a user namespace without a cgroup namespace of
            # its own the kernel refuses a fresh cgroup2 mount (EPERM); in one rooted
            # where the hierarchy is already mounted (a rootless config's rbind of
            # the host's /sys, from the root cgroup), it is EBUSY.
            if exc.errno not in (errno.EPERM, errno.EBUSY):
                raise
            _bind_cgroup2(rootfd, target, m, own=own, rootless=rootless)
            return
    _bind_cgroup2(rootfd, target, m, own=None, rootless=False)


def _bind_cgroup2(
    rootfd: int, target: int, m: MountPlan, *, own: str | None, rootless: bool
) -> None:
    """runc's bind fallback: the container's own cgroup (``own``, emulating a cgroup
    namespace) or the whole hierarchy; a rootless ``own`` that was never created
    (no delegated cgroup) masks the destination with an empty read-only tmpfs."""
    destination = m["destination"]
    try:
        mount(own or _CGROUP_ROOT, fd_path(target), "bind", MS_BIND, display_target=destination)
    except FileNotFoundError:
        if not (rootless and own):
            raise
        mask = new_mask_tmpfs()
        try:
            attach_mount(mask, target, display_path=destination)
        finally:
            os.close(mask)
        return
    with reopened(rootfd, destination) as path:
        set_bind_flags(path, m["flags"], m["clear_flags"], display_path=destination)


def _mount_cgroup_v1(
    rootfd: int,
    target: int,
    m: MountPlan,
    hierarchies: list[tuple[str, str, str]],
    *,
    cgroup_namespace: bool,
) -> None:
    flags = m["flags"]
    destination = m["destination"]
    mount("tmpfs", fd_path(target), "tmpfs", _DEFAULT_FLAGS, "mode=755", display_target=destination)
    own = _own_cgroups()
    merged: list[str] = []
    for point, root, controller in hierarchies:
        name = point.rsplit("/", 1)[1]
        if "," in name:
            merged.append(name)
        sub_destination = f"{destination}/{name}"
        sub = mkdir_all_in_root(rootfd, sub_destination)
        try:
            if cgroup_namespace:
                # Inside a cgroup namespace a fresh mount shows the namespace's root.
                data, source = (name, "cgroup") if name != "systemd" else ("name=systemd", name)
                mount(
                    source,
                    fd_path(sub),
                    "cgroup",
                    _DEFAULT_FLAGS | (flags & MS_RDONLY),
                    data,
                    display_target=sub_destination,
                )
            else:
                mount(
                    _own_source(point, root, own.get(controller, root)),
                    fd_path(sub),
                    "bind",
                    MS_BIND | MS_REC,
                    display_target=sub_destination,
                )
                with reopened(rootfd, sub_destination) as path:
                    set_bind_flags(path, flags, m["clear_flags"], display_path=sub_destination)
        finally:
            os.close(sub)
        for flag in m["propagation"]:
            with reopened(rootfd, sub_destination) as path:
                mount(None, path, None, flag, display_target=sub_destination)
    parent = mkdir_all_in_root(rootfd, destination)
    try:
        for name in merged:
            for controller in name.split(","):
                # co-mounted controllers (cpu,cpuacct) get a symlink each, as in runc
                with contextlib.suppress(FileExistsError):
                    os.symlink(name, controller, dir_fd=parent)
    finally:
        os.close(parent)
    if flags & MS_RDONLY:
        # Deliberately stricter than runc, which leaves this tmpfs writable.
        remount_readonly(rootfd, destination)


def _own_source(point: str, root: str, path: str) -> str:
    """The host directory of our cgroup ``path`` in the hierarchy mounted at ``point``."""
    relative = os.path.relpath(path, root)
    if relative == "." or relative.startswith(".."):
        return point
    return f"{point}/{relative}"
