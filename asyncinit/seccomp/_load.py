"""The init's half: hand a compiled program to ``seccomp()``. No libseccomp here.

Plain synchronous code that imports only ctypes, binascii and the project's
syscall wrappers: it runs in the init right before ``execve`` (or before the
capabilities are dropped, without ``noNewPrivileges``), where every import and
syscall costs every container and a filter may already forbid most syscalls.
"""

from __future__ import annotations

import binascii
import ctypes
from typing import TypedDict

from .._syscalls._process import seccomp
from . import _kernel

__all__ = ["SeccompPlan", "has_listener", "install_filter", "load_plan", "plan_of"]


class SeccompPlan(TypedDict):
    """The filter in the init's plan: base64 ``struct sock_filter[]`` and seccomp() flags."""

    program: str
    flags: int


def plan_of(program: bytes, flags: int) -> SeccompPlan:
    return {"program": binascii.b2a_base64(program, newline=False).decode(), "flags": flags}


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def install_filter(program: bytes, flags: int) -> int | None:
    """Load ``program`` on the calling thread (all threads with TSYNC).

    Returns the notification fd (close-on-exec) when ``flags`` asks for a
    listener, else None. Without no_new_privs the caller needs CAP_SYS_ADMIN
    (EACCES otherwise): runc loads before dropping capabilities in that case.
    """
    count, rest = divmod(len(program), 8)
    if rest or not 0 < count <= 0xFFFF:
        raise ValueError(f"not a BPF program of 1..65535 instructions: {len(program)} bytes")
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(count, ctypes.addressof(buffer))
    result = seccomp(_kernel.SET_MODE_FILTER, flags, ctypes.byref(fprog))
    return result if flags & _kernel.FLAG_NEW_LISTENER else None


def has_listener(plan: SeccompPlan | None) -> bool:
    """Whether loading ``plan`` gives a listener fd (SCMP_ACT_NOTIFY rules)."""
    return plan is not None and bool(plan["flags"] & _kernel.FLAG_NEW_LISTENER)


def load_plan(plan: SeccompPlan) -> int | None:
    """:func:`install_filter` for the plan's filter."""
    return install_filter(binascii.a2b_base64(plan["program"]), plan["flags"])
