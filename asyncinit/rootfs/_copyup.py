"""tmpcopyup: a tmpfs that starts with the contents of the directory it covers.

runc mounts the tmpfs in a scratch directory on the host, copies into it and
moves it over the target.  We need no scratch directory: after the mount, the
O_PATH fd the tmpfs was mounted through still names the covered directory, so
the copy reads from it and writes into the new tmpfs, both through fds.  Nothing
is looked up by a path string, so a symlink in the image cannot redirect the copy.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable

_READ_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_up(covered: int, tmpfs_root: int) -> None:
    """Copy the tree under ``covered`` (an O_PATH fd) into ``tmpfs_root`` (an O_PATH fd)."""
    source = os.open(".", _READ_DIR, dir_fd=covered)
    try:
        target = os.open(".", _READ_DIR, dir_fd=tmpfs_root)
        try:
            _copy_tree(source, target)
        finally:
            os.close(target)
    finally:
        os.close(source)


def _copy_tree(source: int, target: int) -> None:
    with os.scandir(source) as entries:
        names = [entry.name for entry in entries]
    for name in names:
        info = os.stat(name, dir_fd=source, follow_symlinks=False)
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=target)
            child_source = os.open(name, _READ_DIR, dir_fd=source)
            try:
                child_target = os.open(name, _READ_DIR, dir_fd=target)
                try:
                    _copy_tree(child_source, child_target)
                finally:
                    os.close(child_target)
            finally:
                os.close(child_source)
        elif stat.S_ISREG(mode):
            _copy_file(source, target, name, info.st_size)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=source), name, dir_fd=target)
        else:  # device nodes, fifos, sockets
            os.mknod(name, mode, info.st_rdev, dir_fd=target)
        _copy_metadata(target, name, info)


def _copy_file(source: int, target: int, name: str, size: int) -> None:
    flags = os.O_NOFOLLOW | os.O_CLOEXEC
    src = os.open(name, os.O_RDONLY | flags, dir_fd=source)
    try:
        dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | flags, 0o600, dir_fd=target)
        try:
            _copy_bytes(src, dst, size)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_bytes(src: int, dst: int, size: int) -> None:
    copy: Callable[[int, int, int], int] = _copy_file_range
    remaining = size
    while remaining > 0:
        try:
            copied = copy(src, dst, remaining)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS) or copy is _sendfile:
                raise
            copy = _sendfile  # copy_file_range across filesystems needs Linux 5.19
            continue
        if copied == 0:
            break  # the file shrank meanwhile
        remaining -= copied


def _copy_file_range(src: int, dst: int, count: int) -> int:
    return os.copy_file_range(src, dst, count)


def _sendfile(src: int, dst: int, count: int) -> int:
    return os.sendfile(dst, src, None, count)


def _copy_metadata(target: int, name: str, info: os.stat_result) -> None:
    """Owner, then mode (chown clears set-id bits), then times; symlinks keep their mode."""
    os.chown(name, info.st_uid, info.st_gid, dir_fd=target, follow_symlinks=False)
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(name, stat.S_IMODE(info.st_mode), dir_fd=target)
    with contextlib.suppress(OSError):  # symlink times are best effort (as cp -a)
        os.utime(
            name,
            ns=(info.st_atime_ns, info.st_mtime_ns),
            dir_fd=target,
            follow_symlinks=False,
        )
