"""checkProcMount: what may be mounted on and under the container's /proc.

A mount over a file of /proc hides what the kernel says about the container (or
lies about it: a bind of a writable file over /proc/sys/kernel/core_pattern
would hand the container the host's core dump helper).  runc allows procfs on
/proc itself and, under it, only the files lxcfs emulates.
"""

from __future__ import annotations

import errno
import os

from .._errors import StepError
from .._syscalls import PROC_SUPER_MAGIC, fstatfs_type

#: Files under /proc that runc lets a container mount over (checkProcMount's list).
PROC_MOUNT_ALLOWLIST = frozenset(
    {
        "/proc/cpuinfo",
        "/proc/diskstats",
        "/proc/meminfo",
        "/proc/stat",
        "/proc/swaps",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/slabinfo",
        "/proc/net/dev",
        "/proc/sys/kernel/ns_last_pid",
        "/proc/sys/crypto/fips_enabled",
    }
)

#: procfs's root directory inode (PROC_ROOT_INO in the kernel).
_PROC_ROOT_INO = 1


def proc_mount_problem(destination: str, fstype: str, *, bind: bool) -> str | None:
    """Why a mount of ``fstype`` at (clean, absolute) ``destination`` is refused, or None.

    A bind onto /proc is accepted here; its source must then be a procfs root,
    which only the host's filesystem can tell (see :func:`is_procfs_root`).
    """
    if destination == "/proc":
        if fstype == "proc" or bind:
            return None
        return f"only a proc filesystem may be mounted on /proc, not {fstype or 'this mount'}"
    if destination.startswith("/proc/") and destination not in PROC_MOUNT_ALLOWLIST:
        return "mounts under /proc are restricted to runc's allowlist"
    return None


def is_procfs_root(fd: int) -> bool:
    """Whether ``fd`` is the root directory of a procfs (what a bind onto /proc needs)."""
    return fstatfs_type(fd) == PROC_SUPER_MAGIC and os.fstat(fd).st_ino == _PROC_ROOT_INO


def check_proc_mount(
    destination: str, resolved: str, fstype: str, *, bind: bool, source: str = ""
) -> None:
    """Refuse the mount unless both its configured and its resolved target are allowed."""
    for path in dict.fromkeys((destination, resolved)):
        problem = proc_mount_problem(path, fstype, bind=bind)
        if problem is None and path == "/proc" and bind:
            problem = _bind_source_problem(source)
        if problem is not None:
            raise StepError(problem, path=path, errno=errno.EPERM)


def _bind_source_problem(source: str) -> str | None:
    try:
        fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot check the bind source {source}: {exc.strerror}"
    try:
        if is_procfs_root(fd):
            return None
    finally:
        os.close(fd)
    return "only a procfs root may be bind-mounted on /proc"
