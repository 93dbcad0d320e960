"""The steps after the jail: read-only remounts, names, sysctls, read-only and masked paths."""

from __future__ import annotations

import errno
import os
import socket
import stat

from .._errors import StepError
from .._plan import InitPlan
from .._syscalls import MS_BIND, MS_RDONLY, MS_REC, mount, setdomainname
from ..devices._nodes import open_dev_null
from ._mount import bind_remount, current_flags, remount_readonly, reopened
from ._path import fd_path, open_in_root

#: A directory mask: empty, read-only, and too small to hold anything even if remounted.
_MASK_TMPFS_DATA = "nr_blocks=1,nr_inodes=1"


def finalize_rootfs(rootfd: int, plan: InitPlan) -> None:
    """runc's finalizeRootfs: deferred read-only remounts, the read-only root, the umask."""
    for m in plan["mounts"]:
        if m["flags"] & MS_RDONLY and (m["type"] == "tmpfs" or m["destination"] == "/dev"):
            remount_readonly(rootfd, m["destination"])
    if plan["readonly_root"]:
        bind_remount("/", MS_RDONLY | current_flags("/"), display_path="/")
    os.umask(plan["process"]["umask"])  # 0022 unless process.user.umask says otherwise


def set_names(plan: InitPlan) -> None:
    if plan["hostname"] is not None:
        socket.sethostname(plan["hostname"])
    if plan["domainname"] is not None:
        setdomainname(plan["domainname"])


def write_sysctls(sysctl: dict[str, str]) -> None:
    """Write each key under the container's /proc/sys, refusing anything but procfs."""
    proc_dev = os.stat("/proc").st_dev
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_TRUNC)
        try:
            info = os.fstat(fd)
            if info.st_dev != proc_dev or not stat.S_ISREG(info.st_mode):
                raise StepError("sysctl is not a file of the container's procfs", path=path)
            os.write(fd, value.encode())
        finally:
            os.close(fd)


def readonly_paths(rootfd: int, paths: list[str]) -> None:
    """Bind each path onto itself and remount it read-only, keeping nosuid/nodev/noexec."""
    for path in paths:
        try:
            fd = open_in_root(rootfd, path)
        except FileNotFoundError:
            continue
        try:
            mount(fd_path(fd), fd_path(fd), "bind", MS_BIND | MS_REC, display_target=path)
        finally:
            os.close(fd)
        with reopened(rootfd, path) as target:
            bind_remount(target, MS_RDONLY | current_flags(target), display_path=path)


def mask_paths(rootfd: int, paths: list[str]) -> None:
    """Hide files behind the verified /dev/null and directories behind one empty tmpfs."""
    if not paths:
        return
    dev_null: int | None = None
    dir_mask: str | None = None  # the first directory mask, bound onto the next ones
    try:
        for path in paths:
            try:
                fd = open_in_root(rootfd, path)
            except FileNotFoundError:
                continue  # only a missing path is skipped, as runc does
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    if dir_mask is None:
                        mount(
                            "tmpfs",
                            fd_path(fd),
                            "tmpfs",
                            MS_RDONLY,
                            _MASK_TMPFS_DATA,
                            display_target=path,
                        )
                        dir_mask = path
                    else:
                        with reopened(rootfd, dir_mask) as source:
                            mount(source, fd_path(fd), "bind", MS_BIND, display_target=path)
                else:
                    if dev_null is None:
                        dev_null = open_dev_null(rootfd)
                    mount(fd_path(dev_null), fd_path(fd), "bind", MS_BIND, display_target=path)
            finally:
                os.close(fd)
    finally:
        if dev_null is not None:
            os.close(dev_null)


def make_cwd(rootfd: int, cwd: str) -> None:
    """Create the workload's cwd if missing (runc does, inside the jail)."""
    from ._path import mkdir_all_in_root

    try:
        os.close(mkdir_all_in_root(rootfd, cwd))
    except NotADirectoryError as exc:
        raise StepError("process.cwd is not a directory", path=cwd, errno=errno.ENOTDIR) from exc
