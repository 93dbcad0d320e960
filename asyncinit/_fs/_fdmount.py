"""Binds from fd to fd with the new mount API: no path is resolved at mount time.

``mount(2)`` onto ``/proc/self/fd/N`` resolves that string through whatever
/proc the process sees; after pivot_root that is the container's own /proc.
open_tree + move_mount take the source and the target as fds opened (and
verified) beforehand, so what was checked is exactly what gets mounted: an
image that swaps /dev/null for a symlink (CVE-2025-31133) or a container whose
mounts cover /proc (CVE-2025-52881) cannot change where a mask or a device lands.
"""

from __future__ import annotations

import os

from .._syscalls._mount import (
    AT_EMPTY_PATH,
    AT_RECURSIVE,
    FSCONFIG_CMD_CREATE,
    FSCONFIG_SET_FLAG,
    FSCONFIG_SET_STRING,
    MOUNT_ATTR_RDONLY,
    OPEN_TREE_CLOEXEC,
    OPEN_TREE_CLONE,
    attach_mount,
    fsconfig,
    fsmount,
    fsopen,
    mount_setattr,
    open_tree,
)


def clone_tree(source_fd: int, *, recursive: bool, display_path: str) -> int:
    """A detached copy of the mount (subtree) at ``source_fd``, like ``mount --bind``."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH
    try:
        return open_tree(source_fd, "", flags | (AT_RECURSIVE if recursive else 0))
    except OSError as exc:
        exc.filename = display_path
        raise


def bind_onto(
    source_fd: int,
    target_fd: int,
    *,
    display_path: str,
    recursive: bool = False,
    readonly: bool = False,
    attr_set: int = 0,
) -> None:
    """Bind ``source_fd``'s file onto ``target_fd``'s; optionally read-only at the top.

    ``readonly`` applies to the top mount only, as runc's bind + MS_RDONLY
    remount does; every other flag of the source (nosuid, nodev, noexec, atime)
    is kept, since mount_setattr only adds what it is asked for.  ``attr_set``
    adds MOUNT_ATTR_* flags to the whole cloned subtree.
    """
    tree = clone_tree(source_fd, recursive=recursive, display_path=display_path)
    try:
        if attr_set:
            mount_setattr(
                tree,
                "",
                AT_EMPTY_PATH | AT_RECURSIVE,
                attr_set,
                display_path=display_path,
            )
        if readonly:
            mount_setattr(tree, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, display_path=display_path)
        attach_mount(tree, target_fd, display_path=display_path)
    finally:
        os.close(tree)


def new_mask_tmpfs() -> int:
    """A detached, read-only, empty tmpfs that can hold nothing: the directory mask.

    Same superblock options as runc's ``mount("tmpfs", path, "tmpfs", MS_RDONLY,
    "nr_blocks=1,nr_inodes=1")``: read-only mount and superblock, one block and
    one inode, so even a remount read-write would leave nothing to store.
    """
    fs = fsopen("tmpfs")
    try:
        fsconfig(fs, FSCONFIG_SET_STRING, "source", "tmpfs")
        fsconfig(fs, FSCONFIG_SET_STRING, "nr_blocks", "1")
        fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", "1")
        fsconfig(fs, FSCONFIG_SET_FLAG, "ro")
        fsconfig(fs, FSCONFIG_CMD_CREATE)
        return fsmount(fs, MOUNT_ATTR_RDONLY)
    finally:
        os.close(fs)
