"""Jail the init into the rootfs: pivot_root, MS_MOVE + chroot, or chroot alone."""

from __future__ import annotations

import errno
import os

from .._syscalls._mount import (
    MNT_DETACH,
    MS_MOVE,
    MS_PRIVATE,
    MS_REC,
    MS_SLAVE,
    mount,
    pivot_root,
    umount2,
)


def pivot_into(rootfd: int) -> None:
    """runc's pivotRoot: ``pivot_root(".", ".")`` then detach the old root stacked on top.

    Using "." for both arguments needs no temporary directory in the image.  The
    old root is made rslave before it is detached so that the unmount cannot
    propagate back to the host's mounts.
    """
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(rootfd)
        pivot_root(".", ".")
        os.fchdir(old_root)
        mount(None, ".", None, MS_SLAVE | MS_REC)
        umount2(".", MNT_DETACH)
    finally:
        os.close(old_root)
    os.chdir("/")


def ms_move_root(rootfd: int, rootfs: str) -> None:
    """runc's msMoveRoot (``--no-pivot``): move the rootfs onto ``/`` and chroot into it.

    chroot leaves the host's mounts in the namespace, out of sight but not out of
    reach: the kernel lets a container mount a new procfs or sysfs wherever a
    *full* one is visible in its namespace, and with chroot the host's are.  So
    every full proc and sysfs mount outside the rootfs is detached first, or,
    where the kernel refuses to detach it (a locked mount, in a user namespace),
    covered with an empty tmpfs.
    """
    prefix = rootfs.rstrip("/") + "/"
    for point in _full_proc_and_sysfs_mounts():
        if point == rootfs or point.startswith(prefix):
            continue
        try:
            mount(None, point, None, MS_SLAVE | MS_REC)  # the unmount must not reach the host
        except FileNotFoundError:
            continue  # under a mount point detached just before
        try:
            umount2(point, MNT_DETACH)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EPERM):
                raise
            mount("tmpfs", point, "tmpfs", 0)
    os.fchdir(rootfd)
    mount(rootfs, "/", None, MS_MOVE)
    chroot_into(rootfd)


def _full_proc_and_sysfs_mounts() -> list[str]:
    """Mount points of every proc or sysfs mount showing its filesystem's root."""
    points = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fields[3] == "/" and fstype in ("proc", "sysfs"):
                points.append(_unescape(fields[4]))
    return points


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040...)."""
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape").encode("latin-1").decode()


def chroot_into(rootfd: int) -> None:
    """Without a mount namespace pivot_root would move the host's root: chroot instead."""
    os.fchdir(rootfd)
    os.chroot(".")
    os.chdir("/")


def reapply_root_propagation(propagation: int) -> None:
    """runc re-applies rootfsPropagation to the new ``/`` after the jail: before it,
    ``shared`` would have made the container's mounts the host's peers."""
    if propagation and not propagation & MS_PRIVATE:
        mount(None, "/", None, propagation)
