"""Resolve and create paths inside the rootfs without ever leaving it.

Every lookup goes through ``openat2(rootfd, path, RESOLVE_IN_ROOT)``: the kernel
treats ``rootfd`` as ``/`` for absolute symlinks and ``..``, so a hostile image
cannot steer a mount or a mknod onto the host.  Nothing here joins host paths
as strings; the one string we read back (``/proc/self/fd/N``) is only compared.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from .._errors import StepError
from .._syscalls._fds import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2
from ._walk import walk_in_root

_IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
O_PATH_DIR = os.O_PATH | os.O_DIRECTORY


def fd_path(fd: int) -> str:
    """The magic-link path through which a mount(2) or open(2) reaches ``fd``'s file."""
    return f"/proc/self/fd/{fd}"


def relative(path: str) -> str:
    """``path`` as openat2 wants it under a root fd ("." for the root itself)."""
    return path.lstrip("/") or "."


#: False once openat2 answered ENOSYS (kernel < 5.6, or a seccomp filter that hides it).
HAVE_OPENAT2 = True


def open_in_root(rootfd: int, path: str, flags: int = os.O_PATH, *, nofollow: bool = False) -> int:
    """Open ``path`` inside the root; ``nofollow`` opens a final symlink itself.

    An error names ``path`` as the container sees it ("/dev/ptmx"), whichever
    resolver ran (openat2 was given "dev/ptmx", the walk one component).
    """
    global HAVE_OPENAT2
    if nofollow:
        flags |= os.O_NOFOLLOW
    try:
        if HAVE_OPENAT2:
            try:
                return openat2(rootfd, relative(path), flags, _IN_ROOT)
            except OSError as exc:
                if exc.errno != errno.ENOSYS:
                    raise
                HAVE_OPENAT2 = False
        return walk_in_root(rootfd, path, flags)
    except OSError as exc:
        inner = relative(path)
        exc.filename = "/" if inner == "." else f"/{inner}"
        raise


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part and part != "."]


_MAX_SYMLINKS = 40


def mkdir_all_in_root(rootfd: int, path: str, mode: int = 0o755) -> int:
    """Open directory ``path`` inside the root, creating what is missing (``mkdir -p``).

    Each missing component is made with mkdirat on the fd of its resolved parent,
    so a symlink planted anywhere on the way is resolved inside the root, never
    on the host.  A dangling symlink is followed by hand (like runc's
    MkdirAllInRoot): its target is created inside the root.  Returns an
    ``O_PATH`` fd of the directory.
    """
    try:
        return open_in_root(rootfd, path, O_PATH_DIR)
    except FileNotFoundError:
        pass
    created = _mkdir_leaf(rootfd, path, mode)
    if created is not None:
        return created
    pending = _components(path)
    walked: list[str] = []
    links = 0
    parent = open_in_root(rootfd, ".", O_PATH_DIR)
    try:
        while pending:
            part = pending.pop(0)
            candidate = "/".join([*walked, part])
            try:
                child = open_in_root(rootfd, candidate, O_PATH_DIR)
            except FileNotFoundError:
                try:
                    os.mkdir(part, mode, dir_fd=parent)
                except FileExistsError:
                    target = _dangling_target(parent, part)
                    if target is None:  # created meanwhile by someone else: just open it
                        child = open_in_root(rootfd, candidate, O_PATH_DIR)
                    else:
                        links += 1
                        if links > _MAX_SYMLINKS:
                            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path) from None
                        pending = _components(target) + pending
                        if target.startswith("/"):
                            walked = []
                            os.close(parent)
                            parent = open_in_root(rootfd, ".", O_PATH_DIR)
                        continue
                else:
                    child = open_in_root(rootfd, candidate, O_PATH_DIR)
            walked.append(part)
            os.close(parent)
            parent = child
    except BaseException:
        os.close(parent)
        raise
    return parent


def _mkdir_leaf(rootfd: int, path: str, mode: int) -> int | None:
    """The usual case, in one step: the parent exists and only the last name is missing.

    (A mount destination in a fresh tmpfs, say: the walk below would reopen every
    ancestor from the root first.)  None sends the caller down the full walk: no
    parent, or something appeared at the name (a dangling symlink to follow).
    """
    parts = _components(path)
    if len(parts) < 2 or parts[-1] == "..":
        return None
    try:
        parent = open_in_root(rootfd, "/".join(parts[:-1]), O_PATH_DIR)
    except FileNotFoundError:
        return None
    try:
        os.mkdir(parts[-1], mode, dir_fd=parent)
    except FileExistsError:
        return None
    finally:
        os.close(parent)
    return open_in_root(rootfd, path, O_PATH_DIR)


def _dangling_target(parent: int, name: str) -> str | None:
    """The target of symlink ``name`` in ``parent``, or None if it is no symlink."""
    try:
        return os.readlink(name, dir_fd=parent)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return None
        raise


def split_parent(path: str) -> tuple[str, str]:
    """("/a/b", "c") for "/a/b/c"; refuses a path without a final name."""
    parts = _components(path)
    if not parts or parts[-1] == "..":
        raise StepError("path has no final component", path=path)
    return "/" + "/".join(parts[:-1]), parts[-1]


def create_file_in_root(rootfd: int, path: str, mode: int = 0o755) -> int:
    """Open file ``path`` inside the root (``O_PATH``), creating an empty one if missing."""
    try:
        return open_in_root(rootfd, path)
    except FileNotFoundError:
        pass
    parent_path, name = split_parent(path)
    parent = mkdir_all_in_root(rootfd, parent_path)
    try:
        with contextlib.suppress(FileExistsError):
            os.close(
                os.open(
                    name,
                    os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY | os.O_CLOEXEC,
                    mode,
                    dir_fd=parent,
                )
            )
    finally:
        os.close(parent)
    return open_in_root(rootfd, path)


def open_mount_target(rootfd: int, path: str, *, directory: bool, mode: int = 0o755) -> int:
    """The ``O_PATH`` fd a mount lands on: an existing target, or a new dir or file."""
    if directory:
        return mkdir_all_in_root(rootfd, path, mode)
    return create_file_in_root(rootfd, path)


def ensure_inside(rootfs: str, fd: int, path: str) -> str:
    """Refuse a target that resolves outside ``rootfs`` or onto the rootfs itself.

    openat2 resolved the path inside the root, but a directory may have been
    renamed out from under us since; the kernel's own name for the fd says where
    the mount would really land.  Returns the path relative to the rootfs.
    """
    real = os.readlink(fd_path(fd))
    if real == rootfs:
        raise StepError("mount destination resolves to the rootfs itself", path=path)
    if not real.startswith(rootfs.rstrip("/") + "/"):
        raise StepError(f"mount destination escapes the rootfs (resolves to {real})", path=path)
    return real[len(rootfs.rstrip("/")) :]


def is_directory_fd(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)
