"""The ``cgroup`` mount type: cgroup v2 directly, cgroup v1 as a tmpfs of binds.

asyncinit does not create cgroups (yet), so the container sees the hierarchy of
the cgroup it was started in, read-only unless the config asks otherwise, the way
runc shows a container its own cgroup.
"""

from __future__ import annotations

import errno
import os

from .._plan import InitPlan, MountPlan
from .._syscalls import MS_BIND, MS_RDONLY, MS_REC, mount
from ._mount import bind_remount, remount_readonly, reopened
from ._path import fd_path, mkdir_all_in_root

_CGROUP_ROOT = "/sys/fs/cgroup"


def _host_hierarchies() -> tuple[bool, list[tuple[str, str]]]:
    """(pure cgroup v2?, [(mount point, super options)] of the v1 hierarchies)."""
    unified_root = False
    v1: list[tuple[str, str]] = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            separator = fields.index("-")
            point, fstype = fields[4], fields[separator + 1]
            if fstype == "cgroup2" and point == _CGROUP_ROOT:
                unified_root = True
            elif fstype == "cgroup" and point.startswith(_CGROUP_ROOT + "/"):
                v1.append((point, fields[separator + 3]))
    return unified_root, v1


def _own_cgroups() -> dict[str, str]:
    """Controller list ("cpu,cpuacct", "name=systemd", "") -> this process's cgroup path."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup") as cgroups:
        for line in cgroups:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            paths[controllers] = path
    return paths


def mount_cgroup(rootfd: int, rootfs: str, target: int, m: MountPlan, plan: InitPlan) -> None:
    flags = m["flags"]
    destination = m["destination"]
    unified, hierarchies = _host_hierarchies()
    if unified or not hierarchies:
        try:
            mount(
                "cgroup2", fd_path(target), "cgroup2", flags, m["data"], display_target=destination
            )
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EBUSY):
                raise
            # runc's fallback (rootless, or no cgroup namespace): bind the host's hierarchy.
            mount(
                _CGROUP_ROOT, fd_path(target), "bind", MS_BIND | MS_REC, display_target=destination
            )
            with reopened(rootfd, destination) as path:
                bind_remount(path, flags, display_path=destination)
        return

    mount(
        "tmpfs",
        fd_path(target),
        "tmpfs",
        flags & ~MS_RDONLY,
        "mode=755",
        display_target=destination,
    )
    own = _own_cgroups()
    for point, options in hierarchies:
        name = point.rsplit("/", 1)[1]
        controllers = ",".join(
            option for option in options.split(",") if option not in ("rw", "ro")
        )
        sub = mkdir_all_in_root(rootfd, f"{destination}/{name}")
        try:
            if plan["cgroup_namespace"]:
                # Inside a cgroup namespace a fresh mount shows the namespace's root.
                mount(
                    "cgroup",
                    fd_path(sub),
                    "cgroup",
                    flags,
                    controllers,
                    display_target=f"{destination}/{name}",
                )
            else:
                cgroup_path = own.get(controllers, "/")
                source = point + cgroup_path if cgroup_path != "/" else point
                mount(
                    source,
                    fd_path(sub),
                    "bind",
                    MS_BIND | MS_REC,
                    display_target=f"{destination}/{name}",
                )
                with reopened(rootfd, f"{destination}/{name}") as path:
                    bind_remount(path, flags, display_path=f"{destination}/{name}")
        finally:
            os.close(sub)
        for controller in controllers.split(","):
            if controller != name and not controller.startswith("name="):
                # co-mounted controllers (cpu,cpuacct) get a symlink each, as runc does
                parent = mkdir_all_in_root(rootfd, destination)
                try:
                    os.symlink(name, controller, dir_fd=parent)
                except FileExistsError:
                    pass
                finally:
                    os.close(parent)
    if flags & MS_RDONLY:
        remount_readonly(rootfd, destination)
