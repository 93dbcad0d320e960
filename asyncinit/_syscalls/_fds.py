"""File descriptors: openat2 lookups, fstatfs magic numbers, close_range, pidfds, inotify."""

from __future__ import annotations

import ctypes
import os

from . import NR, check, encode, libc, syscall

# openat2 resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# statfs f_type magic numbers
PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
TMPFS_MAGIC = 0x01021994

CLOSE_RANGE_CLOEXEC = 4


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): the kernel resolves ``path`` under ``dirfd`` with ``resolve`` rules."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    result = syscall(
        NR["openat2"],
        ctypes.c_int(dirfd),
        encode(path),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    return check(result, "openat2", path)


class _Statfs(ctypes.Structure):
    _fields_ = (
        ("f_type", ctypes.c_long),
        ("f_bsize", ctypes.c_long),
        ("f_blocks", ctypes.c_ulong),
        ("f_bfree", ctypes.c_ulong),
        ("f_bavail", ctypes.c_ulong),
        ("f_files", ctypes.c_ulong),
        ("f_ffree", ctypes.c_ulong),
        ("f_fsid", ctypes.c_int * 2),
        ("f_namelen", ctypes.c_long),
        ("f_frsize", ctypes.c_long),
        ("f_flags", ctypes.c_long),
        ("f_spare", ctypes.c_long * 4),
    )


def fstatfs_type(fd: int, *, display_path: str | None = None) -> int:
    """The filesystem magic number (``f_type``) of the file ``fd`` refers to."""
    buf = _Statfs()
    check(libc.fstatfs(ctypes.c_int(fd), ctypes.byref(buf)), "fstatfs", display_path)
    return int(buf.f_type) & 0xFFFFFFFF


def close_range_cloexec(first: int) -> None:
    """Mark every fd from ``first`` up close-on-exec, in one syscall."""
    last, flags = ctypes.c_uint(0xFFFFFFFF), ctypes.c_uint(CLOSE_RANGE_CLOEXEC)
    result = syscall(NR["close_range"], ctypes.c_uint(first), last, flags)
    check(result, "close_range")


def pidfd_send_signal(pidfd: int, signum: int) -> None:
    result = syscall(
        NR["pidfd_send_signal"], ctypes.c_int(pidfd), ctypes.c_int(signum), None, ctypes.c_uint(0)
    )
    check(result, "pidfd_send_signal")


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """A close-on-exec copy of fd ``target_fd`` of the process ``pidfd`` names (runc's pidGetFd)."""
    result = syscall(
        NR["pidfd_getfd"], ctypes.c_int(pidfd), ctypes.c_int(target_fd), ctypes.c_uint(0)
    )
    return check(result, "pidfd_getfd")


# inotify(7), for cgroup v2 event files (memory.events, cgroup.events)
IN_MODIFY = 0x2
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


def inotify_init() -> int:
    return check(libc.inotify_init1(ctypes.c_int(IN_NONBLOCK | IN_CLOEXEC)), "inotify_init1")


def inotify_add_watch(fd: int, path: str, mask: int) -> int:
    result = libc.inotify_add_watch(ctypes.c_int(fd), encode(path), ctypes.c_uint32(mask))
    return check(result, "inotify_add_watch", path)
