"""Jail the init into the rootfs: pivot_root, or chroot without a mount namespace."""

from __future__ import annotations

import os

from .._syscalls import MNT_DETACH, MS_REC, MS_SLAVE, mount, pivot_root, umount2


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


def chroot_into(rootfd: int) -> None:
    """Without a mount namespace pivot_root would move the host's root: chroot instead."""
    os.fchdir(rootfd)
    os.chroot(".")
    os.chdir("/")
