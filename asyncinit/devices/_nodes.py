"""linux.devices and the default devices: runc's createDevices.

Every node is made with mknodat on the fd of its parent directory, resolved
inside the rootfs (a symlinked parent lands in the rootfs, never on the host),
then reopened with O_NOFOLLOW and its type and major:minor checked before it is
chmod-ed or chown-ed: we never change the mode of a file something else put
there.  What the image already had at a device path is replaced, never trusted
(runc keeps it, even a symlink).  Without CAP_MKNOD (a user namespace, or EPERM
from mknod) the host's node is bind-mounted onto an empty file instead.

A node made on a ``nodev`` mount (a rootfs under a tmpfs /tmp, which systemd
mounts nosuid,nodev, with no tmpfs on /dev) refuses every open (EACCES; runc
fails so, reopening /dev/null): it is bound onto itself without ``nodev``, the
flag dropped for the verified node asyncinit made and nothing else.
"""

from __future__ import annotations

import errno
import os
import stat

from .._errors import StepError
from .._fs._fdmount import bind_onto, clone_tree
from .._fs._path import fd_path, mkdir_all_in_root, split_parent
from .._plan import DevicePlan
from .._syscalls._mount import AT_EMPTY_PATH, MOUNT_ATTR_NODEV, attach_mount, mount_setattr

_TYPE_BITS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def create_devices(rootfd: int, devices: list[DevicePlan], *, bind: bool) -> None:
    """Create every device; ``bind`` (user namespace) bind-mounts the host's nodes instead."""
    for device in devices:
        if device["path"] == "/dev/ptmx":
            continue  # always the pts/ptmx symlink (setup_ptmx), as runc
        if bind or not _mknod_device(rootfd, device):
            _bind_device(rootfd, device)


def _matches(info: os.stat_result, device: DevicePlan) -> bool:
    kind = _TYPE_BITS[device["type"]]
    if stat.S_IFMT(info.st_mode) != kind:
        return False
    return kind == stat.S_IFIFO or info.st_rdev == os.makedev(device["major"], device["minor"])


def _clear(parent: int, name: str, path: str) -> None:
    """Remove whatever the image has at ``name`` (node, file, symlink); refuse a directory."""
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        raise StepError("a directory is in the way of a device", path=path, errno=errno.EISDIR)
    os.unlink(name, dir_fd=parent)


def _mknod_device(rootfd: int, device: DevicePlan) -> bool:
    """mknod, verify, chmod, chown; False when mknod is not permitted (bind instead)."""
    path = device["path"]
    parent_path, name = split_parent(path)
    parent = mkdir_all_in_root(rootfd, parent_path)
    try:
        kind = _TYPE_BITS[device["type"]]
        nodev = kind != stat.S_IFIFO and os.fstatvfs(parent).f_flag & os.ST_NODEV
        _clear(parent, name, path)
        rdev = 0 if kind == stat.S_IFIFO else os.makedev(device["major"], device["minor"])
        try:
            os.mknod(name, kind | 0o600, rdev, dir_fd=parent)
        except PermissionError:
            return False
        node = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    finally:
        os.close(parent)
    try:
        if not _matches(os.fstat(node), device):
            raise StepError("device node changed under us", path=path, errno=errno.EXDEV)
        # Through the verified fd: chmod/chown never follow a path someone swapped.
        os.chmod(fd_path(node), device["file_mode"] & 0o7777)
        os.chown(fd_path(node), device["uid"], device["gid"])
        if nodev:
            tree = clone_tree(node, recursive=False, display_path=path)
            try:
                mount_setattr(tree, "", AT_EMPTY_PATH, 0, MOUNT_ATTR_NODEV, display_path=path)
                attach_mount(tree, node, display_path=path)
            finally:
                os.close(tree)
    finally:
        os.close(node)
    return True


def _open_host_node(device: DevicePlan) -> int:
    """The host's node at the device's path, verified to be the configured device."""
    host = device["path"]
    try:
        fd = os.open(host, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise StepError(
            "the host has no such device to bind into the container", path=host, errno=errno.ENOENT
        ) from exc
    if not _matches(os.fstat(fd), device):
        os.close(fd)
        raise StepError("the host's node is not the configured device", path=host)
    return fd


def _open_empty_file(rootfd: int, path: str) -> int:
    """An ``O_PATH`` fd of a regular file at ``path``, created (or replaced) if need be."""
    parent_path, name = split_parent(path)
    parent = mkdir_all_in_root(rootfd, parent_path)
    try:
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            _clear(parent, name, path)
            os.close(
                os.open(
                    name,
                    os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY | os.O_CLOEXEC,
                    0o644,
                    dir_fd=parent,
                )
            )
        target = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    finally:
        os.close(parent)
    if not stat.S_ISREG(os.fstat(target).st_mode):
        os.close(target)
        raise StepError("bind target for a device is not a regular file", path=path)
    return target


def _bind_device(rootfd: int, device: DevicePlan) -> None:
    source = _open_host_node(device)
    try:
        target = _open_empty_file(rootfd, device["path"])
        try:
            bind_onto(source, target, display_path=device["path"])
        finally:
            os.close(target)
    finally:
        os.close(source)
