"""prepare_root and mount_to_rootfs: the mounts of config.json, in config order.

runc's counterpart is ``prepareRoot``/``mountToRootfs`` in
``libcontainer/rootfs_linux.go``.  Every target is opened inside the rootfs
first (see ``asyncinit._fs._path``) and the mount lands on that fd through
``/proc/self/fd/N`` (or ``move_mount`` onto it), so the kernel, not a string
join, decides where it goes; where the fd points is checked before and after.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple

from .._errors import StepError
from .._fs._path import (
    O_PATH_DIR,
    ensure_inside,
    fd_path,
    mkdir_all_in_root,
    open_in_root,
    open_mount_target,
)
from .._plan import MountPlan
from .._syscalls._mount import (
    MS_BIND,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SHARED,
    attach_mount,
    mount,
)
from ._procmount import check_proc_mount
from ._remount import reopened, set_bind_flags
from ._sysfs import mount_sysfs

__all__ = ["MountContext", "mount_to_rootfs", "open_root", "prepare_root"]

#: Filesystems that runc mounts rw first and makes read-only only in finalize_rootfs,
#: because the devices, the mode chmod or copy-up still have to write into them.
_DEFERRED_READONLY_TYPES = frozenset({"tmpfs"})


class MountContext(NamedTuple):
    """What mounting an entry needs beyond the entry itself (youki's MountOptions)."""

    #: O_PATH fd of the rootfs, the root every target is resolved in
    rootfd: int
    #: the rootfs's host path, to check where a target really resolved
    rootfs: str
    #: sysfs falls back to a bind of the host's /sys when a user namespace may not mount it
    user_namespace: bool
    #: cgroup v1 hierarchies are mounted fresh in a cgroup namespace, bound otherwise
    cgroup_namespace: bool
    #: the container's cgroup v2 directory on the host (runc's cgroup2Path), or None
    cgroup2_path: str | None = None
    #: runc's rootlessCgroups: a cgroup2_path that was never created masks the mount
    rootless_cgroups: bool = False


def prepare_root(rootfs: str, propagation: int) -> int:
    """runc's prepareRoot: cut propagation to the host, bind the rootfs onto itself.

    ``/`` becomes rslave (or the configured ``propagation``) so that no mount
    the init makes can propagate back to the host; the self-bind turns the
    rootfs into a mount point, which pivot_root requires.  Returns the rootfs's fd.
    """
    mount(None, "/", None, propagation)
    if propagation & MS_SHARED or not propagation & MS_REC:
        # Only then can the rootfs's parent mount still be shared (runc checks always;
        # after a recursive slave/private, no mount is shared and the walk is saved).
        _make_parent_mount_private(rootfs)
    mount(rootfs, rootfs, "bind", MS_BIND | MS_REC)
    return open_root(rootfs)


def open_root(rootfs: str) -> int:
    return os.open(rootfs, O_PATH_DIR | os.O_CLOEXEC)


def _make_parent_mount_private(rootfs: str) -> None:
    """runc's rootfsParentMountPrivate: pivot_root refuses a shared parent mount, and
    the rootfs self-bind would propagate to the host's peers through it."""
    best, shared = "/", False
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            point = fields[4]
            if (rootfs == point or rootfs.startswith(point.rstrip("/") + "/")) and len(
                point
            ) >= len(best):
                best = point
                optional = fields[6 : fields.index("-")]
                shared = any(field.startswith("shared:") for field in optional)
    if shared:
        mount(None, best, None, MS_PRIVATE)


def _source_is_directory(source: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(source).st_mode)
    except FileNotFoundError as exc:
        raise StepError(
            "bind mount source does not exist", path=source, errno=errno.ENOENT
        ) from exc


def _open_real_directory(rootfd: int, destination: str) -> int:
    """proc and sysfs targets must be real directories, never symlinks (runc): a
    /proc swapped for a symlink would put the container's procfs somewhere else
    and leave /proc to whatever the image put there."""
    try:
        fd = open_in_root(rootfd, destination, nofollow=True)
    except FileNotFoundError:
        return mkdir_all_in_root(rootfd, destination)
    if not stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise StepError(
            "proc and sysfs must be mounted on a directory, not a symlink or file",
            path=destination,
            errno=errno.ENOTDIR,
        )
    return fd


def _open_target(rootfd: int, m: MountPlan, source_fd: int | None) -> tuple[int, bool]:
    """The O_PATH fd the mount lands on, and whether it existed before."""
    destination = m["destination"]
    if m["type"] in ("proc", "sysfs"):
        return _open_real_directory(rootfd, destination), True
    if m["bind"]:
        if source_fd is not None:
            directory = stat.S_ISDIR(os.fstat(source_fd).st_mode)
        else:
            directory = _source_is_directory(m["source"])
        return open_mount_target(rootfd, destination, directory=directory), True
    try:
        return open_in_root(rootfd, destination, O_PATH_DIR), True
    except FileNotFoundError:
        return mkdir_all_in_root(rootfd, destination), False


def mount_to_rootfs(ctx: MountContext, m: MountPlan, source_fd: int | None = None) -> None:
    """runc's mountToRootfs: mount one config.json entry inside the rootfs.

    ``source_fd`` is a detached mount prepared by the parent (idmapped binds).
    """
    rootfd, rootfs = ctx.rootfd, ctx.rootfs
    destination = m["destination"]
    fstype = m["type"]
    target, existed = _open_target(rootfd, m, source_fd)
    try:
        resolved = ensure_inside(rootfs, target, destination)
        check_proc_mount(destination, resolved, fstype, bind=m["bind"], source=m["source"])
        if fstype == "cgroup":
            from ._cgroup import mount_cgroup

            mount_cgroup(
                rootfd,
                target,
                m,
                cgroup_namespace=ctx.cgroup_namespace,
                cgroup2_path=ctx.cgroup2_path,
                rootless_cgroups=ctx.rootless_cgroups,
            )
        elif m["bind"]:
            _bind(rootfd, target, m, source_fd)
        elif fstype == "sysfs":
            mount_sysfs(target, m, user_namespace=ctx.user_namespace)
        else:
            _mount_filesystem(rootfd, target, m, existed)
        # The mount went onto the fd's directory: if that moved meanwhile, say so.
        if ensure_inside(rootfs, target, destination) != resolved:
            raise StepError(
                "mount target was moved while it was being mounted on",
                path=destination,
                errno=errno.EAGAIN,
            )
    finally:
        os.close(target)
    _apply_propagation(rootfd, m)
    if m["attr_set"] or m["attr_clr"]:
        from ._recursive import set_rec_attr

        set_rec_attr(rootfd, m)


def _mount_filesystem(rootfd: int, target: int, m: MountPlan, existed: bool) -> None:
    flags = m["flags"]
    data = m["data"]
    if m["type"] in _DEFERRED_READONLY_TYPES or m["destination"] == "/dev":
        flags &= ~MS_RDONLY
    if m["type"] == "tmpfs" and existed:
        # runc: a tmpfs takes the mode of the directory it covers unless mode= says otherwise
        mode = f"mode={stat.S_IMODE(os.fstat(target).st_mode):04o}"
        data = f"{mode},{data}" if data else mode
    mount(
        m["source"] or m["type"],
        fd_path(target),
        m["type"],
        flags,
        data,
        display_target=m["destination"],
    )
    if m["type"] == "tmpfs" and "tmpcopyup" in m["extensions"]:
        from ._copyup import copy_up

        fresh = open_in_root(rootfd, m["destination"], O_PATH_DIR)
        try:
            copy_up(target, fresh)
        finally:
            os.close(fresh)


def _bind(rootfd: int, target: int, m: MountPlan, source_fd: int | None) -> None:
    if source_fd is not None:
        # An idmapped bind: only a caller privileged over the source filesystem's user
        # namespace may set MOUNT_ATTR_IDMAP, which an init in a user namespace never is
        # for a host directory.  So the parent built the detached mount (open_tree +
        # mount_setattr, parent/_mount_sources.py) and sent its fd (runc's
        # procMountPlease / procMountFd): the init only attaches it.
        attach_mount(source_fd, target, display_path=m["destination"])
    else:
        flags = MS_BIND | (MS_REC if m["recursive"] else 0)
        mount(m["source"], fd_path(target), "bind", flags, display_target=m["destination"])
    if m["flags"] & ~(MS_BIND | MS_REC | MS_REMOUNT) or m["clear_flags"]:
        # A bind ignores every flag but MS_BIND/MS_REC: apply them with a bind remount.
        with reopened(rootfd, m["destination"]) as path:
            set_bind_flags(path, m["flags"], m["clear_flags"], display_path=m["destination"])


def _apply_propagation(rootfd: int, m: MountPlan) -> None:
    if not m["propagation"]:
        return
    with reopened(rootfd, m["destination"]) as path:
        for flags in m["propagation"]:
            mount(None, path, None, flags, display_target=m["destination"])
