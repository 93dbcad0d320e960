"""The /dev symlinks: runc's setupPtmx and setupDevSymlinks.

CVE-2026-41579: runc joined "<rootfs>/dev/ptmx" as a string, so an image whose
/dev is a symlink to a host directory had runc unlink and create files there,
on the host.  Here /dev is opened inside the rootfs (a symlink resolves within
it) and every unlink and symlink is made relative to that directory fd.
"""

from __future__ import annotations

import contextlib
import os

from .._fs._path import mkdir_all_in_root

_DEV_SYMLINKS = (
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
)


def setup_dev_symlinks(rootfd: int) -> None:
    """/dev/ptmx -> pts/ptmx, then fd, stdin, stdout, stderr and core (if /proc/kcore exists)."""
    links = list(_DEV_SYMLINKS)
    if os.path.exists("/proc/kcore"):  # CONFIG_PROC_KCORE may be off, as on this kernel
        links.append(("/proc/kcore", "core"))
    dev = mkdir_all_in_root(rootfd, "/dev")
    try:
        setup_ptmx(dev)
        for target, name in links:
            with contextlib.suppress(FileExistsError):  # runc leaves what the image put there
                os.symlink(target, name, dir_fd=dev)
    finally:
        os.close(dev)


def setup_ptmx(dev: int) -> None:
    """/dev/ptmx must be the devpts instance's ptmx, whatever the image had there."""
    try:
        os.unlink("ptmx", dir_fd=dev)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        os.rmdir("ptmx", dir_fd=dev)  # runc's os.Remove takes an empty directory too
    os.symlink("pts/ptmx", "ptmx", dir_fd=dev)
