"""The container's /dev/null, opened and verified before anything relies on it."""

from __future__ import annotations

import errno
import os
import stat

from .._errors import StepError
from ..rootfs._path import open_in_root

NULL_RDEV = os.makedev(1, 3)


def is_dev_null(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == NULL_RDEV


def open_dev_null(rootfd: int, flags: int = os.O_PATH) -> int:
    """An fd of the container's /dev/null, verified to be the 1:3 char device.

    CVE-2025-31133: an image whose /dev/null is a symlink to a procfs file
    (say /proc/sys/kernel/core_pattern) would otherwise turn every masked path
    into a writable bind of that file.  The final component is not followed
    and the fd, not the path, is what gets bound.
    """
    fd = open_in_root(rootfd, "/dev/null", flags, nofollow=True)
    if not is_dev_null(os.fstat(fd)):
        os.close(fd)
        raise StepError(
            "/dev/null in the container is not the 1:3 character device",
            path="/dev/null",
            errno=errno.EPERM,
        )
    return fd


def reopen_dev_null(rootfd: int) -> None:
    """After the jail: stdio on the host's /dev/null moves to the container's own.

    runc's reOpenDevNull, with the container's node verified first, so that a
    swapped /dev/null cannot hand the workload some other file as its stdio.
    """
    container_null: int | None = None
    try:
        for fd in (0, 1, 2):
            try:
                info = os.fstat(fd)
            except OSError:
                continue
            if not is_dev_null(info):
                continue
            if container_null is None:
                container_null = open_dev_null(rootfd, os.O_RDWR)
            os.dup2(container_null, fd)
    finally:
        if container_null is not None:
            os.close(container_null)
