"""Thin ctypes wrappers for the Linux syscalls that `os` does not expose, by concern.

This package's own module is what every wrapper shares: libc, the syscall numbers
of each architecture, and the errors.  Every wrapper raises an :class:`OSError`
whose ``errno`` is the kernel's, whose message starts with the operation's name
and whose ``filename``/``filename2`` are the paths involved, so an error can cross
the sync pipe and still say what failed.  The wrappers, by concern:

- ``_mount``: mount(2) flags, umount2, pivot_root, the new mount API
- ``_fds``: openat2, fstatfs magic numbers, close_range, pidfds, inotify
- ``_process``: the calling process: namespaces (unshare, setns, the domain
  name), prctl, capabilities, seccomp, the session keyring, scheduling, I/O
  priority, personality, madvise
- ``_bpf``: bpf(2) for the cgroup v2 device filter
- ``_clone``: clone3(2) into a cgroup (the fork server's)

Each caller imports the modules it needs: the init's start path loads no bpf or
clone3 code.  libc is loaded once, at import, by ``CDLL(None)``:
``ctypes.util.find_library`` would run ``ldconfig`` in a subprocess, which is slow
and, after pivot_root, the container's binary.  Only ctypes is imported: this
package is on the init's hot path.
"""

from __future__ import annotations

import ctypes
import os
import platform

from .. import _kernel

libc = ctypes.CDLL(None, use_errno=True)
syscall = libc.syscall
syscall.restype = ctypes.c_long

_ARCH = platform.machine()
_BY_ARCH: dict[str, dict[str, int]] = {
    "x86_64": {
        "pivot_root": 155,
        "mount": 165,
        "umount2": 166,
        "unshare": 272,
        "setns": 308,
        "keyctl": 250,
        "bpf": 321,
        "seccomp": 317,
        "sched_setattr": 314,
        "ioprio_set": 251,
        "personality": 135,
    },
    "aarch64": {
        "pivot_root": 41,
        "mount": 40,
        "umount2": 39,
        "unshare": 97,
        "setns": 268,
        "keyctl": 219,
        "bpf": 280,
        "seccomp": 277,
        "sched_setattr": 274,
        "ioprio_set": 30,
        "personality": 92,
    },
}
NR = dict(_BY_ARCH.get(_ARCH, _BY_ARCH["x86_64"]))
# From 424 on, syscall numbers are the same on every architecture.
NR.update(
    pidfd_send_signal=424,
    open_tree=428,
    move_mount=429,
    fsopen=430,
    fsconfig=431,
    fsmount=432,
    pidfd_open=434,
    close_range=436,
    openat2=437,
    clone3=435,
    pidfd_getfd=438,
    mount_setattr=442,
)


def _error(operation: str, path: str | None = None, path2: str | None = None) -> OSError:
    err = ctypes.get_errno()
    message = f"{operation}: {os.strerror(err)}"
    hint = _kernel.syscall_hint(operation, err)
    if hint:
        message = f"{message}: {hint}"
    error = OSError(err, message, path, None, path2)
    error.operation = operation  # type: ignore[attr-defined]
    return error


def check(result: int, operation: str, path: str | None = None, path2: str | None = None) -> int:
    if result == -1:
        raise _error(operation, path, path2)
    return result


def encode(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def operation_of(error: BaseException) -> str | None:
    """The syscall name attached to an OSError raised here, if any."""
    return getattr(error, "operation", None)


def with_operation(error: OSError, operation: str) -> OSError:
    """Tag an OSError raised by `os` with the operation that failed."""
    if operation_of(error) is None:
        error.operation = operation  # type: ignore[attr-defined]
    return error
