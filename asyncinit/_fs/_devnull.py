"""The container's /dev/null, opened and verified before anything relies on it."""

from __future__ import annotations

import errno
import os
import stat

from .._errors import StepError
from ._path import open_in_root

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
