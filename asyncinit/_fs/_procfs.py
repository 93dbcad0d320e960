"""A private procfs handle: the one /proc the container's mounts cannot redirect.

CVE-2025-52881: a runtime that writes ``/proc/sys/...`` (or any procfs file) by
path, after the container's mounts exist, writes wherever those mounts point
(a bind of another procfs file, a symlinked /proc from a shared volume).  We
create a fresh procfs instance with fsopen/fsmount instead: a detached mount
that only this process holds, so nothing mounted in the container can sit on
top of it, and every lookup below it is made with openat2 rules that refuse
symlinks and mount crossings.
"""

from __future__ import annotations

import errno
import os

from .._errors import StepError
from .._syscalls._fds import (
    PROC_SUPER_MAGIC,
    RESOLVE_BENEATH,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
    fstatfs_type,
    openat2,
)
from .._syscalls._mount import (
    FSCONFIG_CMD_CREATE,
    FSCONFIG_SET_STRING,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    OPEN_TREE_CLOEXEC,
    OPEN_TREE_CLONE,
    fsconfig,
    fsmount,
    fsopen,
    open_tree,
)

_AT_FDCWD = -100
#: procfs's root directory inode (PROC_ROOT_INO in the kernel).
_PROC_ROOT_INO = 1

#: No symlink, no magic link, no other mount, never above the procfs root.
STRICT_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV


def open_private_procfs() -> int:
    """A detached procfs of this process's pid namespace (fd of its root directory).

    Must be called while the host's /proc is still fully visible: inside a user
    namespace the kernel refuses a new procfs unless an unobstructed one is
    already mounted ("mount too revealing"), and the container's own /proc gets
    masked later.  If a fresh instance is refused anyway, a detached clone of
    the current /proc mount (without its submounts) serves the same purpose.
    """
    try:
        fs = fsopen("proc")
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EPERM):
            raise
        return _clone_current_proc()
    try:
        fsconfig(fs, FSCONFIG_SET_STRING, "source", "proc")
        fsconfig(fs, FSCONFIG_CMD_CREATE)
        procfd = fsmount(fs, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
    except PermissionError:
        return _clone_current_proc()
    finally:
        os.close(fs)
    _check_procfs(procfd)
    return procfd


def _clone_current_proc() -> int:
    procfd = open_tree(_AT_FDCWD, "/proc", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)
    _check_procfs(procfd)
    return procfd


def _check_procfs(procfd: int) -> None:
    if fstatfs_type(procfd, display_path="/proc") != PROC_SUPER_MAGIC:
        os.close(procfd)
        raise StepError("the private procfs handle is not procfs", path="/proc", errno=errno.EXDEV)


def open_proc_file(procfd: int, relative: str, flags: int) -> int:
    """Open ``relative`` (e.g. "sys/net/ipv4/ip_forward") strictly below ``procfd``."""
    return openat2(procfd, relative, flags | os.O_CLOEXEC, STRICT_RESOLVE)


def is_procfs_root(fd: int) -> bool:
    """Whether ``fd`` is the root directory of a procfs (what a bind onto /proc needs)."""
    return fstatfs_type(fd) == PROC_SUPER_MAGIC and os.fstat(fd).st_ino == _PROC_ROOT_INO
