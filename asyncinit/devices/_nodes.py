"""Device nodes and the /dev symlinks (runc's createDevices, setupDevSymlinks, setupPtmx).

Every node and link is made relative to a directory fd resolved inside the rootfs,
so an image whose ``/dev`` is a symlink to a host directory changes nothing on
the host.  A node is reopened with ``O_NOFOLLOW`` and its type and major:minor
checked before it is chmod-ed or chown-ed: we never change the mode of a file
that something else swapped in.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from .._errors import StepError
from .._plan import DevicePlan
from .._syscalls import MS_BIND, mount
from ..rootfs._path import (
    create_file_in_root,
    fd_path,
    mkdir_all_in_root,
    open_in_root,
    split_parent,
)

_TYPE_BITS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}

#: runc's default devices: (path, major, minor), char devices, mode 0666, owned by root.
DEFAULT_DEVICES: tuple[tuple[str, int, int], ...] = (
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)

_DEV_SYMLINKS = (
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
)


def create_devices(rootfd: int, devices: list[DevicePlan], *, bind: bool) -> None:
    """Create every device; ``bind`` (user namespace) bind-mounts the host's nodes instead."""
    for device in devices:
        if bind:
            _bind_device(rootfd, device)
        else:
            try:
                _mknod_device(rootfd, device)
            except PermissionError:
                _bind_device(rootfd, device)  # mknod refused (no CAP_MKNOD): runc binds too


def _mknod_device(rootfd: int, device: DevicePlan) -> None:
    parent_path, name = split_parent(device["path"])
    parent = mkdir_all_in_root(rootfd, parent_path)
    try:
        kind = _TYPE_BITS[device["type"]]
        rdev = os.makedev(device["major"], device["minor"]) if kind != stat.S_IFIFO else 0
        try:
            os.unlink(name, dir_fd=parent)  # an image's own node is replaced, never trusted
        except FileNotFoundError:
            pass
        except IsADirectoryError as exc:
            raise StepError(
                "a directory is in the way of a device node",
                path=device["path"],
                errno=errno.EISDIR,
            ) from exc
        os.mknod(name, kind | 0o600, rdev, dir_fd=parent)
        node = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    finally:
        os.close(parent)
    try:
        _verify_node(node, device)
        os.chmod(fd_path(node), device["file_mode"])
        os.chown(fd_path(node), device["uid"], device["gid"])
    finally:
        os.close(node)


def _bind_device(rootfd: int, device: DevicePlan) -> None:
    host = device["path"]
    try:
        host_stat = os.stat(host)
    except FileNotFoundError as exc:
        raise StepError(
            "the host has no such device to bind into the container", path=host, errno=errno.ENOENT
        ) from exc
    if stat.S_IFMT(host_stat.st_mode) != _TYPE_BITS[device["type"]] or (
        device["type"] != "p" and host_stat.st_rdev != os.makedev(device["major"], device["minor"])
    ):
        raise StepError("the host's node is not the configured device", path=host)
    target = create_file_in_root(rootfd, device["path"], 0o644)
    try:
        if not stat.S_ISREG(os.fstat(target).st_mode):
            raise StepError("bind target for a device is not a regular file", path=device["path"])
        mount(host, fd_path(target), "bind", MS_BIND, display_target=device["path"])
    finally:
        os.close(target)


def _verify_node(fd: int, device: DevicePlan) -> None:
    info = os.fstat(fd)
    expected = _TYPE_BITS[device["type"]]
    if stat.S_IFMT(info.st_mode) != expected or (
        expected != stat.S_IFIFO and info.st_rdev != os.makedev(device["major"], device["minor"])
    ):
        raise StepError("device node changed under us", path=device["path"], errno=errno.EXDEV)


def setup_dev_symlinks(rootfd: int) -> None:
    """/dev/fd, stdin, stdout, stderr, core (when /proc/kcore exists) and ptmx."""
    links = list(_DEV_SYMLINKS)
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "core"))
    dev = mkdir_all_in_root(rootfd, "/dev")
    try:
        for target, name in links:
            with contextlib.suppress(FileExistsError):  # runc leaves what the image put there
                os.symlink(target, name, dir_fd=dev)
        # /dev/ptmx must be the devpts instance's ptmx, whatever the image had.
        with contextlib.suppress(FileNotFoundError):
            os.unlink("ptmx", dir_fd=dev)
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev)
    finally:
        os.close(dev)


def open_dev_null(rootfd: int) -> int:
    """An ``O_PATH`` fd of the container's /dev/null, verified to be the 1:3 char device.

    CVE-2025-31133: an image whose /dev/null is a symlink to a procfs file would
    otherwise turn every masked path into a bind of that file.
    """
    fd = open_in_root(rootfd, "/dev/null", nofollow=True)
    info = os.fstat(fd)
    if not stat.S_ISCHR(info.st_mode) or info.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise StepError(
            "/dev/null in the container is not the 1:3 character device",
            path="/dev/null",
            errno=errno.EPERM,
        )
    return fd


def reopen_dev_null() -> None:
    """After the jail: stdio on the host's /dev/null moves to the container's own."""
    null_rdev = os.makedev(1, 3)
    container_null: int | None = None
    try:
        for fd in (0, 1, 2):
            try:
                info = os.fstat(fd)
            except OSError:
                continue
            if not stat.S_ISCHR(info.st_mode) or info.st_rdev != null_rdev:
                continue
            if container_null is None:
                container_null = os.open("/dev/null", os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
                check = os.fstat(container_null)
                if not stat.S_ISCHR(check.st_mode) or check.st_rdev != null_rdev:
                    raise StepError(
                        "/dev/null in the container is not the 1:3 character device",
                        path="/dev/null",
                        errno=errno.EPERM,
                    )
            os.dup2(container_null, fd)
    finally:
        if container_null is not None:
            os.close(container_null)
