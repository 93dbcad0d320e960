"""clone3(2) into a cgroup v2 directory: the fork server's children born in their cgroup.

Kept apart from the init's syscalls: only the fork server forks this way, and
loading ``PyDLL`` is no cost of the init's.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os

from . import NR, libc

# clone3(2) with CLONE_INTO_CGROUP (Linux 5.7): a child born in a cgroup v2 directory,
# with no migration (on v1 and v2 a move into cgroup.procs waits for an RCU grace period)
CLONE_INTO_CGROUP = 0x200000000


class _CloneArgs(ctypes.Structure):
    _fields_ = tuple(
        (name, ctypes.c_uint64)
        for name in (
            "flags",
            "pidfd",
            "child_tid",
            "parent_tid",
            "exit_signal",
            "stack",
            "stack_size",
            "tls",
            "set_tid",
            "set_tid_size",
            "cgroup",
        )
    )


# PyDLL keeps the GIL across the call: the child must come back holding it, as from fork()
_pyapi = ctypes.PyDLL(None, use_errno=True)
_pysyscall = _pyapi.syscall
_pysyscall.restype = ctypes.c_long


def fork_into_cgroup(cgroup_fd: int) -> int:
    """fork(), the child starting inside the cgroup v2 directory ``cgroup_fd``.

    Python's fork hooks run as for ``os.fork`` (PyOS_BeforeFork/AfterFork_*).  The
    child's glibc still caches the parent's thread id (glibc's own fork refreshes
    it); CPython and glibc's signal and thread calls ask the kernel, so only
    priority-inheritance mutexes would notice: call it from a single-threaded
    process (the fork server) and keep the child's use of such locks nil.
    """
    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=17, cgroup=cgroup_fd)  # SIGCHLD
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = _pysyscall(NR["clone3"], ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    err = ctypes.get_errno()
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
        return 0
    ctypes.pythonapi.PyOS_AfterFork_Parent()
    if pid == -1:
        error = OSError(err, f"clone3: {os.strerror(err)}")
        error.operation = "clone3"  # type: ignore[attr-defined]
        raise error
    return int(pid)


@functools.cache
def has_clone_into_cgroup() -> bool:
    """Whether this kernel has clone3(CLONE_INTO_CGROUP) (5.7; a seccomp filter may
    hide clone3 with ENOSYS or EPERM).  Asked with an fd that is no cgroup directory, so
    no process is ever made: EBADF answers yes; ENOSYS, E2BIG or EINVAL, no."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=17, cgroup=fd)
        pid = libc.syscall(
            ctypes.c_long(NR["clone3"]), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args))
        )
        err = ctypes.get_errno()
    finally:
        os.close(fd)
    if pid == 0:  # "/" a cgroup v2 directory: cannot be, but never run on as a copy
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
    return pid > 0 or err == errno.EBADF
