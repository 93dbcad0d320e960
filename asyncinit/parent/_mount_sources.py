"""Idmapped bind mounts, the parent's half (runc's procMountPlease / mountFd).

The init cannot set ``MOUNT_ATTR_IDMAP`` on a host directory from inside a user
namespace (the kernel wants privilege over the source filesystem's namespace,
the host's), so the parent builds every idmapped mount, on request, on the
host: ``open_tree(OPEN_TREE_CLONE)`` detaches a copy of the source,
``mount_setattr(MOUNT_ATTR_IDMAP)`` maps its owners through a user namespace
holding the mount's mappings, and the fd goes to the init over the sync pipe,
which ``move_mount``s it onto the target it opened inside the rootfs.

The user namespace for a mapping is made by a child that runs nothing but
libc's ``sleep``: ``clone(CLONE_NEWUSER)`` with a C function as the child's body
is safe in a threaded process (no Python runs in the child), costs about a
millisecond, and the child dies on its own if we do before we kill it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
from collections.abc import Mapping

import attrs

from .._errors import InitError, error_fields
from .._kernel import idmap_hint
from .._syscalls import with_operation
from .._syscalls._mount import (
    AT_EMPTY_PATH,
    AT_RECURSIVE,
    MOUNT_ATTR_IDMAP,
    OPEN_TREE_CLOEXEC,
    OPEN_TREE_CLONE,
    mount_setattr,
    open_tree,
)
from .._syscalls._process import CLONE_NEWUSER

#: How long the namespace holder sleeps if nobody kills it (it is killed at once).
_HOLDER_SECONDS = 10
_STACK_SIZE = 64 * 1024


@attrs.frozen
class MountSource:
    """How to build one idmapped mount, decided by compile_spec."""

    field: str
    source: str
    #: rbind: clone the whole tree under the source, not just its top mount
    recursive: bool
    #: ridmap: idmap every mount of the cloned tree, not just the top one
    idmap_recursive: bool
    #: "containerID hostID size" lines; both empty means the container's own user namespace
    uid_map: str = ""
    gid_map: str = ""
    #: a user namespace to use as it is (the one the container joins by path)
    userns_path: str | None = None


def _clone_holder() -> int:
    """A child in a new user namespace, asleep; returns its pid."""
    libc = ctypes.CDLL(None, use_errno=True)
    clone = libc.clone
    clone.restype = ctypes.c_int
    clone.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    stack = ctypes.create_string_buffer(_STACK_SIZE)
    top = (ctypes.addressof(stack) + _STACK_SIZE - 64) & ~0xF
    body = ctypes.cast(libc.sleep, ctypes.c_void_p)
    pid = int(clone(body, top, CLONE_NEWUSER | signal.SIGCHLD, _HOLDER_SECONDS))
    if pid == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"clone: {os.strerror(err)}")
    return pid


def open_userns(uid_map: str, gid_map: str) -> int:
    """An fd of a fresh user namespace with these mappings (relative to ours)."""
    pid = _clone_holder()
    try:
        if os.geteuid() != 0:  # without CAP_SETGID here the kernel wants setgroups denied
            with open(f"/proc/{pid}/setgroups", "w") as f:
                f.write("deny")
        for name, mapping in (("uid_map", uid_map), ("gid_map", gid_map)):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(mapping)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def build_mount(source: MountSource, userns_fd: int) -> int:
    """The detached idmapped mount of ``source.source``: an fd for move_mount."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
    if source.recursive:
        flags |= AT_RECURSIVE
    tree = open_tree(-100, source.source, flags)  # AT_FDCWD: a host path, on the host
    try:
        setattr_flags = AT_EMPTY_PATH | (AT_RECURSIVE if source.idmap_recursive else 0)
        mount_setattr(
            tree,
            "",
            setattr_flags,
            MOUNT_ATTR_IDMAP,
            userns_fd=userns_fd,
            display_path=source.source,
        )
    except OSError as exc:
        os.close(tree)
        hint = idmap_hint(_filesystems(source)) if exc.errno == errno.EINVAL else None
        if hint:
            error = OSError(exc.errno, f"{exc.strerror}: {hint}", source.source)
            raise with_operation(error, "mount_setattr") from exc
        raise
    except BaseException:
        os.close(tree)
        raise
    return tree


def _filesystems(source: MountSource) -> list[str]:
    """The types of the filesystems an idmapped mount of ``source`` covers: the one
    ``source`` is on, then (``ridmap``) those mounted below it, from our mountinfo."""
    path = os.path.realpath(source.source)
    on, below = ("", ""), []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            point, fstype = fields[4], fields[fields.index("-") + 1]
            if path == point or path.startswith(point.rstrip("/") + "/"):
                if len(point) >= len(on[0]):
                    on = (point, fstype)
            elif point.startswith(path.rstrip("/") + "/") and source.idmap_recursive:
                below.append(fstype)
    return [on[1], *below]


class MountSources:
    """Builds the idmapped mounts of one container start; caches a userns per mapping."""

    def __init__(self, sources: Mapping[int, MountSource], init_pid: int) -> None:
        self.sources = sources
        self.init_pid = init_pid
        self._userns: dict[tuple[str, str, str | None], int] = {}

    def _userns_fd(self, source: MountSource) -> int:
        key = (source.uid_map, source.gid_map, source.userns_path)
        if key not in self._userns:
            if source.userns_path is not None:
                fd = os.open(source.userns_path, os.O_RDONLY | os.O_CLOEXEC)
            elif not source.uid_map:
                fd = os.open(f"/proc/{self.init_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
            else:
                fd = open_userns(source.uid_map, source.gid_map)
            self._userns[key] = fd
        return self._userns[key]

    def open(self, index: int) -> int:
        """The detached mount for mounts[index]; raises InitError naming the field."""
        source = self.sources.get(index)
        if source is None:
            raise InitError(
                f"the init asked for the source of mounts[{index}], which is not idmapped",
                stage="mount",
            )
        try:
            return build_mount(source, self._userns_fd(source))
        except OSError as exc:
            raise InitError.from_fields(error_fields(exc, "mount", source.field)) from exc

    def close(self) -> None:
        for fd in self._userns.values():
            os.close(fd)
        self._userns.clear()
