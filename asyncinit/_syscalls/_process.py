"""The calling process or thread: its namespaces (unshare, setns, the domain name),
prctl, capabilities, seccomp, the session keyring, scheduling, I/O priority,
personality, memory advice.
"""

from __future__ import annotations

import ctypes
import functools

from . import NR, check, libc, syscall

# clone/unshare flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080


def unshare(flags: int) -> None:
    check(syscall(NR["unshare"], ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0, path: str | None = None) -> None:
    check(syscall(NR["setns"], ctypes.c_int(fd), ctypes.c_int(nstype)), "setns", path)


def setdomainname(name: str) -> None:
    raw = name.encode()
    check(libc.setdomainname(raw, ctypes.c_size_t(len(raw))), "setdomainname", name)


# prctl
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


def seccomp(operation: int, flags: int, args: object) -> int:
    """seccomp(2); ``args`` is a ctypes pointer (``byref``) or None. Returns the kernel's result."""
    result = syscall(NR["seccomp"], ctypes.c_uint(operation), ctypes.c_uint(flags), args)
    return check(result, "seccomp")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    result: int = libc.prctl(
        ctypes.c_int(option),
        ctypes.c_ulong(arg2),
        ctypes.c_ulong(arg3),
        ctypes.c_ulong(arg4),
        ctypes.c_ulong(arg5),
    )
    return check(result, "prctl")


MADV_RANDOM = 1
MADV_DONTNEED = 4


def madvise(address: int, length: int, advice: int) -> None:
    result: int = libc.madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), advice)
    check(result, "madvise")


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) for the calling thread, with 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for index, shift in enumerate((0, 32)):
        data[index].effective = (effective >> shift) & 0xFFFFFFFF
        data[index].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[index].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    check(libc.capset(ctypes.byref(header), data), "capset")


@functools.cache
def last_cap() -> int:
    """The highest capability the kernel knows; read once, before the jail hides /proc."""
    with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
        return int(f.read())


_KEYCTL_JOIN_SESSION_KEYRING = 1
_KEYCTL_SETPERM = 5
_KEYCTL_DESCRIBE = 6
_KEY_USR_SEARCH = 0x080000


def join_session_keyring(name: str) -> None:
    """A new session keyring for the calling thread, searchable by its user (runc's).

    Without it the container shares the caller's session keyring, and so the keys
    of whoever started it.  Credentials are per thread: call it in the thread that
    execs.
    """
    key = syscall(NR["keyctl"], ctypes.c_int(_KEYCTL_JOIN_SESSION_KEYRING), name.encode())
    key = check(key, "keyctl", name)
    buffer = ctypes.create_string_buffer(256)
    length = syscall(
        NR["keyctl"],
        ctypes.c_int(_KEYCTL_DESCRIBE),
        ctypes.c_int(key),
        buffer,
        ctypes.c_size_t(256),
    )
    check(length, "keyctl", name)
    perm = int(buffer.value.split(b";")[3], 16)
    result = syscall(
        NR["keyctl"],
        ctypes.c_int(_KEYCTL_SETPERM),
        ctypes.c_int(key),
        ctypes.c_uint(perm | _KEY_USR_SEARCH),
    )
    check(result, "keyctl", name)


# Per-process attributes: process.scheduler, process.ioPriority, linux.personality
IOPRIO_WHO_PROCESS = 1


class _SchedAttr(ctypes.Structure):
    """struct sched_attr, SCHED_ATTR_SIZE_VER1 (with the utilization clamps)."""

    _fields_ = (
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    )


def sched_setattr(
    policy: int, flags: int, nice: int, priority: int, runtime: int, deadline: int, period: int
) -> None:
    """sched_setattr(0, attr, 0): the calling thread's policy and parameters."""
    attr = _SchedAttr(
        ctypes.sizeof(_SchedAttr), policy, flags, nice, priority, runtime, deadline, period, 0, 0
    )
    result = syscall(NR["sched_setattr"], ctypes.c_int(0), ctypes.byref(attr), ctypes.c_uint(0))
    check(result, "sched_setattr")


def ioprio_set(value: int) -> None:
    """ioprio_set(IOPRIO_WHO_PROCESS, 0, value): the calling thread's I/O priority."""
    result = syscall(
        NR["ioprio_set"], ctypes.c_int(IOPRIO_WHO_PROCESS), ctypes.c_int(0), ctypes.c_int(value)
    )
    check(result, "ioprio_set")


def personality(persona: int) -> int:
    """personality(2); returns the previous persona."""
    return check(syscall(NR["personality"], ctypes.c_ulong(persona)), "personality")
