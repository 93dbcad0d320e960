"""Pure rule tables shared by config validation, the compiler and the init's steps.

Each rule lives here once: config/ checks what the file says with it, the
compiler checks what the host says, and a step re-checks the plan it is given
(a plan is never trusted blindly).  Nothing here touches the filesystem.
"""

from __future__ import annotations

import os
import re

#: What PID 1 does (docs/architecture.md): spawn()'s ``init``, else this annotation.
INIT_MODES = ("exec", "supervise")
INIT_MODE_ANNOTATION = "io.asyncinit.init"
#: "true" or "false": forward signals to the workload's process group (spawn()'s
#: ``signal_group`` overrides it).
SIGNAL_GROUP_ANNOTATION = "io.asyncinit.init.signal-group"

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


def proc_mount_problem(destination: str, fstype: str, *, bind: bool) -> str | None:
    """Why a mount of ``fstype`` at (clean, absolute) ``destination`` is refused, or None.

    runc's checkProcMount: procfs on /proc itself and, under it, only the files
    lxcfs emulates.  A bind onto /proc is accepted here; its source must then be
    a procfs root, which only the host's filesystem can tell
    (:func:`asyncinit._fs._procfs.is_procfs_root`).
    """
    if destination == "/proc":
        if fstype == "proc" or bind:
            return None
        return f"only a proc filesystem may be mounted on /proc, not {fstype or 'this mount'}"
    if destination.startswith("/proc/") and destination not in PROC_MOUNT_ALLOWLIST:
        return "mounts under /proc are restricted to runc's allowlist"
    return None


_SYSCTL_SEPARATORS = re.compile(r"[./]")


def sysctl_components(key: str) -> list[str] | None:
    """The path components of sysctl ``key`` under /proc/sys, or None if it is malformed.

    A key is written in sysctl(8)'s dot form ("net.ipv4.ip_forward", where an
    interface name's own dots are spelled "/": "net.ipv4.conf.eth0/100.rp_filter")
    or in its slash form ("net/ipv4/conf/eth0.100/rp_filter"); runc accepts both.
    A key with an empty, "." or ".." component is refused whichever way it is
    read: runc up to 1.1 turned "net.ipv4/../../vm/swappiness" into
    /proc/sys/vm/swappiness, passing the "net." namespace check and writing a
    host-wide setting.
    """
    if (
        not key
        or "\0" in key
        or any(part in ("", ".", "..") for part in _SYSCTL_SEPARATORS.split(key))
    ):
        return None
    first = _SYSCTL_SEPARATORS.search(key)
    if first is not None and first.group() == "/":
        return key.split("/")
    return [part.replace("/", ".") for part in key.split(".")]


def dotted(key: str) -> str:
    """Sysctl ``key`` in dot form, as runc's namespace checks compare it."""
    components = sysctl_components(key)
    return key if components is None else ".".join(c.replace(".", "/") for c in components)


#: runc's default devices: (path, major, minor), char devices, mode 0666, owned by root.
DEFAULT_DEVICES: tuple[tuple[str, int, int], ...] = (
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)


def exit_code(wait_status: int) -> int:
    """A shell's view of a wait status: the exit code, or 128 + the killing signal."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status)
