"""prepare_root and mount_to_rootfs: the mounts of config.json, in config order.

runc's counterpart is ``prepareRoot``/``mountToRootfs`` in
``libcontainer/rootfs_linux.go``.  Every target is opened inside the rootfs
first (see ``_path``) and the mount lands on that fd through
``/proc/self/fd/N``, so the kernel, not a string join, decides where it goes.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from .._errors import StepError
from .._plan import InitPlan, MountPlan
from .._syscalls import (
    MNT_DETACH,
    MS_BIND,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SHARED,
    ST_TO_MS,
    mount,
    umount2,
)
from ._path import (
    O_PATH_DIR,
    ensure_inside,
    fd_path,
    mkdir_all_in_root,
    open_in_root,
    open_mount_target,
)
from ._sysfs import mount_sysfs

#: Files under /proc that runc lets a container mount over (checkProcMount).
PROC_MOUNT_ALLOWLIST = frozenset(
    {
        "/proc/cpuinfo",
        "/proc/diskstats",
        "/proc/meminfo",
        "/proc/stat",
        "/proc/swaps",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/slabinfo",
        "/proc/sys/kernel/ns_last_pid",
        "/proc/sys/crypto/fips_enabled",
    }
)

#: Filesystems that runc mounts rw first and makes read-only only in finalize_rootfs,
#: because the devices, the mode chmod or copy-up still have to write into them.
_DEFERRED_READONLY_TYPES = frozenset({"tmpfs"})


def prepare_root(plan: InitPlan) -> int:
    """Cut propagation to the host, bind the rootfs onto itself, return its fd.

    ``/`` becomes rslave (or the configured propagation) so that no mount the
    init makes can propagate back to the host; the self-bind turns the rootfs
    into a mount point, which pivot_root requires.
    """
    mount(None, "/", None, plan["root_propagation"])
    rootfs = plan["rootfs"]
    if plan["root_propagation"] & MS_SHARED:
        _make_parent_mount_private(rootfs)
    mount(rootfs, rootfs, "bind", MS_BIND | MS_REC)
    return open_root(rootfs)


def open_root(rootfs: str) -> int:
    return os.open(rootfs, O_PATH_DIR | os.O_CLOEXEC)


def _make_parent_mount_private(rootfs: str) -> None:
    """pivot_root refuses a rootfs whose parent mount is shared."""
    best = "/"
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4]
            if (rootfs == point or rootfs.startswith(point.rstrip("/") + "/")) and len(point) > len(
                best
            ):
                best = point
    mount(None, best, None, MS_PRIVATE)


def check_proc_mount(destination: str, resolved: str, fstype: str) -> None:
    """Refuse mounts onto /proc that are not procfs, and under /proc outside the allowlist."""
    for path in {destination, resolved}:
        if path == "/proc":
            if fstype != "proc":
                raise StepError(
                    f"only a proc filesystem may be mounted on /proc, not {fstype}",
                    path=path,
                    errno=errno.EPERM,
                )
        elif path.startswith("/proc/") and path not in PROC_MOUNT_ALLOWLIST:
            raise StepError(
                "mounts under /proc are restricted to runc's allowlist",
                path=path,
                errno=errno.EPERM,
            )


def _source_is_directory(source: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(source).st_mode)
    except FileNotFoundError as exc:
        raise StepError(
            "bind mount source does not exist", path=source, errno=errno.ENOENT
        ) from exc


def _open_real_directory(rootfd: int, destination: str) -> int:
    """proc and sysfs targets must be real directories, never symlinks (runc)."""
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


def mount_to_rootfs(rootfd: int, rootfs: str, m: MountPlan, plan: InitPlan) -> None:
    """Mount one config.json entry inside the rootfs."""
    destination = m["destination"]
    fstype = m["type"]
    if fstype in ("proc", "sysfs"):
        target = _open_real_directory(rootfd, destination)
    elif m["bind"]:
        target = open_mount_target(rootfd, destination, directory=_source_is_directory(m["source"]))
    else:
        target = mkdir_all_in_root(rootfd, destination)
    try:
        resolved = ensure_inside(rootfs, target, destination)
        check_proc_mount(destination, resolved, fstype)
        if fstype == "cgroup":
            from ._cgroup import mount_cgroup

            mount_cgroup(rootfd, rootfs, target, m, plan)
        elif m["bind"]:
            _bind(rootfd, target, m)
        elif fstype == "sysfs":
            mount_sysfs(target, m, plan)
        else:
            _mount_filesystem(rootfd, target, m)
    finally:
        os.close(target)
    _apply_propagation(rootfd, m)


def _mount_filesystem(rootfd: int, target: int, m: MountPlan) -> None:
    flags = m["flags"]
    if m["type"] in _DEFERRED_READONLY_TYPES or m["destination"] == "/dev":
        flags &= ~MS_RDONLY
    mode = None
    if m["type"] == "tmpfs" and "mode=" not in m["data"]:
        mode = stat.S_IMODE(os.fstat(target).st_mode)  # tmpfs inherits the directory's mode
    mount(
        m["source"] or m["type"],
        fd_path(target),
        m["type"],
        flags,
        m["data"],
        display_target=m["destination"],
    )
    if mode is not None:
        with reopened(rootfd, m["destination"]) as path:
            os.chmod(path, mode)


def _bind(rootfd: int, target: int, m: MountPlan) -> None:
    flags = MS_BIND | (MS_REC if m["recursive"] else 0)
    mount(m["source"], fd_path(target), "bind", flags, display_target=m["destination"])
    remount_flags = m["flags"] & ~(MS_BIND | MS_REC | MS_REMOUNT)
    if remount_flags or m["clear_flags"]:
        # A bind ignores every flag but MS_BIND/MS_REC: apply them with a bind remount.
        with reopened(rootfd, m["destination"]) as path:
            bind_remount(path, remount_flags, display_path=m["destination"])


@contextmanager
def reopened(rootfd: int, destination: str) -> Iterator[str]:
    """A fresh fd path for ``destination``: after a mount, the old fd names the covered dir."""
    fd = open_in_root(rootfd, destination)
    try:
        yield fd_path(fd)
    finally:
        os.close(fd)


def bind_remount(path: str, flags: int, *, display_path: str) -> None:
    """MS_BIND|MS_REMOUNT with ``flags``, retried with the mount's locked flags on EPERM.

    Inside a user namespace the kernel refuses to drop nosuid/nodev/noexec/ro/atime
    flags that a more privileged namespace set ("locked"), so the retry keeps them.
    """
    base = MS_BIND | MS_REMOUNT
    try:
        mount(None, path, None, base | flags, display_target=display_path)
    except PermissionError:
        mount(None, path, None, base | flags | current_flags(path), display_target=display_path)


def _apply_propagation(rootfd: int, m: MountPlan) -> None:
    if not m["propagation"]:
        return
    with reopened(rootfd, m["destination"]) as path:
        for flags in m["propagation"]:
            mount(None, path, None, flags, display_target=m["destination"])


def current_flags(path: str) -> int:
    """The MS_* flags a mount has now (from statvfs), to keep across a bind remount."""
    current = os.statvfs(path).f_flag
    flags = 0
    for st_flag, ms_flag in ST_TO_MS.items():
        if current & st_flag:
            flags |= ms_flag
    return flags


def remount_readonly(rootfd: int, destination: str) -> None:
    """Make the mount at ``destination`` read-only, keeping its other flags.

    Always a *bind* remount: a plain MS_REMOUNT would change the superblock, which
    for a bind of a host filesystem means the host's own mount.
    """
    with reopened(rootfd, destination) as path:
        bind_remount(path, MS_RDONLY | current_flags(path), display_path=destination)


def detach(path: str) -> None:
    umount2(path, MNT_DETACH)
