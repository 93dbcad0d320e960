"""Bind remounts: changing the flags of a mount the init made, never its superblock.

Shared by the mounts of config.json (``_mount``), the cgroup mount type
(``_cgroup``) and finalize (``_finalize``).  Always ``MS_BIND | MS_REMOUNT``: a
plain ``MS_REMOUNT`` would change the superblock, which for a bind of a host
filesystem means the host's own mount.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from .._fs._path import fd_path, open_in_root
from .._syscalls._mount import (
    MS_ATIME_ENUM,
    MS_BIND,
    MS_LOCKED,
    MS_NODIRATIME,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_STRICTATIME,
    ST_TO_MS,
    mount,
)


@contextmanager
def reopened(rootfd: int, destination: str) -> Iterator[str]:
    """A fresh fd path for ``destination``: after a mount, the old fd names the covered dir."""
    fd = open_in_root(rootfd, destination)
    try:
        yield fd_path(fd)
    finally:
        os.close(fd)


def current_flags(path: str) -> int:
    """The MS_* flags a mount has now (from statvfs), to keep across a bind remount.

    strictatime is not stored as a flag: a mount with no other atime mode has it,
    and a remount without MS_STRICTATIME would quietly turn it into relatime.
    """
    current = os.statvfs(path).f_flag
    flags = 0
    for st_flag, ms_flag in ST_TO_MS.items():
        if current & st_flag:
            flags |= ms_flag
    if not flags & MS_ATIME_ENUM:
        flags |= MS_STRICTATIME
    return flags


def set_bind_flags(path: str, flags: int, cleared: int, *, display_path: str) -> None:
    """runc's bind remount: the mount gets exactly ``flags`` (a bind ignores them at mount).

    Inside a user namespace the kernel refuses (EPERM) to drop
    nosuid/nodev/noexec/ro/atime flags that a more privileged namespace set.  The
    retry keeps those locked flags, unless the config asked to clear one of them
    (``cleared``) or for another atime mode: then the mount could not be what the
    config says, and the first error stands.
    """
    flags = (flags & ~MS_REC) | MS_BIND | MS_REMOUNT
    try:
        mount(None, path, None, flags, display_target=display_path)
    except OSError:
        current = current_flags(path)
        atime = MS_ATIME_ENUM | MS_NODIRATIME
        if current & cleared & MS_LOCKED or (flags & atime and flags & atime != current & atime):
            raise
        mount(None, path, None, flags | (current & MS_LOCKED), display_target=display_path)


def add_readonly_flag(path: str, *, display_path: str) -> None:
    """Make the mount at ``path`` read-only, keeping every flag it has (locked ones too)."""
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | current_flags(path)
    mount(None, path, None, flags, display_target=display_path)


def remount_readonly(rootfd: int, destination: str) -> None:
    """Make the mount at ``destination`` (inside the root) read-only, keeping its other flags."""
    with reopened(rootfd, destination) as path:
        add_readonly_flag(path, display_path=destination)
