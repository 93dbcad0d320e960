"""mount(2), umount2, pivot_root, and the new mount API (open_tree, move_mount,
mount_setattr, fsopen/fsconfig/fsmount) for mounts built detached and attached by fd.
"""

from __future__ import annotations

import ctypes
import os

from . import NR, check, encode, syscall

# mount(2)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_SYNCHRONOUS = 16
MS_MANDLOCK = 64
MS_ATIME_ENUM = MS_NOATIME | MS_RELATIME | MS_STRICTATIME
#: flags the kernel locks on mounts inherited from a more privileged user namespace
MS_LOCKED = MS_RDONLY | MS_NODEV | MS_NOEXEC | MS_NOSUID | MS_ATIME_ENUM | MS_NODIRATIME
MS_PROPAGATION = MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE
MNT_DETACH = 2

# statvfs f_flag bits (ST_*) that a bind remount must keep, and their MS_* twins
ST_TO_MS = {
    os.ST_RDONLY: MS_RDONLY,
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_SYNCHRONOUS: MS_SYNCHRONOUS,
    os.ST_MANDLOCK: MS_MANDLOCK,
    os.ST_NOATIME: MS_NOATIME,
    os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
    0x2000: MS_NOSYMFOLLOW,  # ST_NOSYMFOLLOW, not in `os` on 3.11
}

# open_tree / move_mount / mount_setattr
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_IDMAP = 0x100000


def mount(
    source: str | None,
    target: str,
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
    *,
    display_target: str | None = None,
) -> None:
    """mount(2). ``display_target`` names the target in errors when ``target`` is an fd path."""
    result = syscall(
        NR["mount"],
        encode(source),
        encode(target),
        encode(fstype),
        ctypes.c_ulong(flags),
        encode(data or None),
    )
    check(result, "mount", display_target or target, source)


def umount2(target: str, flags: int = 0) -> None:
    check(syscall(NR["umount2"], encode(target), ctypes.c_int(flags)), "umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    result = syscall(NR["pivot_root"], encode(new_root), encode(put_old))
    check(result, "pivot_root", new_root, put_old)


def open_tree(dirfd: int, path: str, flags: int) -> int:
    result = syscall(NR["open_tree"], ctypes.c_int(dirfd), encode(path), ctypes.c_uint(flags))
    return check(result, "open_tree", path)


def move_mount(from_fd: int, from_path: str, to_fd: int, to_path: str, flags: int) -> None:
    result = syscall(
        NR["move_mount"],
        ctypes.c_int(from_fd),
        encode(from_path),
        ctypes.c_int(to_fd),
        encode(to_path),
        ctypes.c_uint(flags),
    )
    check(result, "move_mount", to_path or None)


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def mount_setattr(
    dirfd: int,
    path: str,
    flags: int,
    attr_set: int,
    attr_clr: int = 0,
    propagation: int = 0,
    userns_fd: int = 0,
    *,
    display_path: str | None = None,
) -> None:
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    result = syscall(
        NR["mount_setattr"],
        ctypes.c_int(dirfd),
        encode(path),
        ctypes.c_uint(flags),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    check(result, "mount_setattr", display_path or path)


# The new mount API, for mounts built detached and attached onto a pinned fd:
# no path string (and no /proc/self/fd magic link) is resolved at attach time.
FSOPEN_CLOEXEC = 1
FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8


def fsopen(fstype: str) -> int:
    """fsopen(2): a filesystem context for a new superblock of ``fstype``."""
    result = syscall(NR["fsopen"], encode(fstype), ctypes.c_uint(FSOPEN_CLOEXEC))
    return check(result, "fsopen", fstype)


def fsconfig(fs_fd: int, cmd: int, key: str | None = None, value: str | None = None) -> None:
    result = syscall(
        NR["fsconfig"],
        ctypes.c_int(fs_fd),
        ctypes.c_uint(cmd),
        encode(key),
        encode(value),
        ctypes.c_int(0),
    )
    check(result, "fsconfig", key)


def fsmount(fs_fd: int, attr_flags: int = 0) -> int:
    """fsmount(2): a detached mount of the context's superblock, as an fd."""
    result = syscall(
        NR["fsmount"],
        ctypes.c_int(fs_fd),
        ctypes.c_uint(FSMOUNT_CLOEXEC),
        ctypes.c_uint(attr_flags),
    )
    return check(result, "fsmount")


def attach_mount(tree_fd: int, target_fd: int, *, display_path: str) -> None:
    """move_mount(2) the detached tree ``tree_fd`` onto the file ``target_fd`` names."""
    result = syscall(
        NR["move_mount"],
        ctypes.c_int(tree_fd),
        b"",
        ctypes.c_int(target_fd),
        b"",
        ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
    )
    check(result, "move_mount", display_path)
