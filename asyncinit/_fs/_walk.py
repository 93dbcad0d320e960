"""``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`` by hand, for kernels without openat2.

The walk opens one component at a time with ``O_PATH | O_NOFOLLOW`` relative to
the fd of the directory before it, so the kernel never follows a symlink for us:
each one is read and its target walked here, with ``/`` meaning the rootfs and
``..`` never climbing above it.  That is the rule an image's symlinks get under
openat2 too, so a link to ``/etc`` or ``../../..`` stays inside the container's
tree whichever resolver runs.  Symlinks below procfs's root directory
(``/proc/self/fd/N``, ``/proc/self/root``...) are "magic": their target is not
a path but a file, so they are refused with ELOOP, as RESOLVE_NO_MAGICLINKS does.
"""

from __future__ import annotations

import errno
import os
import stat

from .._syscalls._fds import PROC_SUPER_MAGIC, fstatfs_type

_MAX_SYMLINKS = 40


def _loop(path: str) -> OSError:
    return OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


def _is_magic_link_parent(dirfd: int) -> bool:
    """procfs's plain symlinks (self, thread-self, mounts, net...) live in its root
    directory (inode 1); every symlink deeper down (/proc/PID/{exe,cwd,root,fd/N,ns/X})
    is a magic link."""
    return fstatfs_type(dirfd) == PROC_SUPER_MAGIC and os.fstat(dirfd).st_ino != 1


def walk_in_root(rootfd: int, path: str, flags: int) -> int:
    """Open ``path`` under ``rootfd`` as ``openat2(..., RESOLVE_IN_ROOT)`` would.

    ``flags`` are open(2) flags; with ``O_NOFOLLOW`` a final symlink is opened
    itself (only meaningful with ``O_PATH``, as for openat2).
    """
    nofollow = bool(flags & os.O_NOFOLLOW)
    pending = [part for part in path.split("/") if part and part != "."]
    stack = [os.dup(rootfd)]  # stack[-1] is the current directory; stack[0] the root
    names = [""]  # the name each stack entry was opened by, in the entry below it
    links = 0
    try:
        while pending:
            part = pending.pop(0)
            if part == "..":
                if len(stack) > 1:  # ".." of the root is the root (RESOLVE_IN_ROOT)
                    os.close(stack.pop())
                    names.pop()
                continue
            if part == ".":
                continue
            fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
            info = os.fstat(fd)
            if stat.S_ISLNK(info.st_mode) and (pending or not nofollow):
                try:
                    if _is_magic_link_parent(stack[-1]):
                        raise _loop(path)  # a magic link: its target is no path to walk
                    target = os.readlink(part, dir_fd=stack[-1])
                finally:
                    os.close(fd)
                links += 1
                if links > _MAX_SYMLINKS:
                    raise _loop(path)
                pending[:0] = [p for p in target.split("/") if p and p != "."]
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                        names.pop()
                continue
            if pending and not stat.S_ISDIR(info.st_mode):
                os.close(fd)
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append(fd)
            names.append(part)
        return _reopen(stack, names[-1], flags, path)
    finally:
        for fd in stack:
            os.close(fd)


def _reopen(stack: list[int], name: str, flags: int, path: str) -> int:
    """The final fd with the caller's flags, refusing a file swapped in meanwhile."""
    final = stack[-1]
    if flags & os.O_PATH and not flags & os.O_DIRECTORY:
        return os.dup(final)
    if flags & os.O_DIRECTORY and not stat.S_ISDIR(os.fstat(final).st_mode):
        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
    if flags & os.O_PATH:
        return os.dup(final)
    # Reopen through "." (a directory) or the name in its parent (O_NOFOLLOW), then
    # check it is still the inode we walked to: a rename race makes it fail, not escape.
    if len(stack) > 1 and not stat.S_ISDIR(os.fstat(final).st_mode):
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-2])
    else:
        fd = os.open(".", flags | os.O_CLOEXEC, dir_fd=final)
    expected, got = os.fstat(final), os.fstat(fd)
    if (expected.st_dev, expected.st_ino) != (got.st_dev, got.st_ino):
        os.close(fd)
        raise OSError(errno.EAGAIN, "the file changed while it was opened", path)
    return fd
