"""A thin ctypes layer over libseccomp 2.5+ (``libseccomp.so.2``), the parent's compiler.

Only what compiling an OCI profile needs: a filter context, architectures, rules
with argument comparisons, the binary-tree optimizer, name resolution and
``seccomp_export_bpf``. The library is loaded on first use, in the caller (never
in the init, which loads the exported program with a bare ``seccomp()``).
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Sequence
from typing import Final

from .._errors import AsyncInitError

__all__ = ["Filter", "Libseccomp", "LibseccompUnavailable", "libseccomp"]

_SONAME: Final = "libseccomp.so.2"
_ATTR_CTL_OPTIMIZE: Final = 8  # enum scmp_filter_attr SCMP_FLTATR_CTL_OPTIMIZE
_NR_SCMP_ERROR: Final = -1


class LibseccompUnavailable(AsyncInitError, OSError):
    """libseccomp could not be loaded, or is older than 2.5."""


class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint))


class ArgCmp(ctypes.Structure):
    """``struct scmp_arg_cmp``."""

    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


class Libseccomp:
    """The loaded library, with prototypes declared once."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        u32, ptr, c_int, c_char_p = ctypes.c_uint32, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
        self._lib = lib
        prototypes: dict[str, tuple[object, list[object]]] = {
            "seccomp_init": (ptr, [u32]),
            "seccomp_release": (None, [ptr]),
            "seccomp_arch_add": (c_int, [ptr, u32]),
            "seccomp_arch_native": (u32, []),
            "seccomp_arch_resolve_name": (u32, [c_char_p]),
            "seccomp_attr_set": (c_int, [ptr, c_int, u32]),
            "seccomp_rule_add_array": (c_int, [ptr, u32, c_int, ctypes.c_uint, ptr]),
            "seccomp_export_bpf": (c_int, [ptr, c_int]),
            "seccomp_syscall_resolve_name": (c_int, [c_char_p]),
            "seccomp_syscall_resolve_name_arch": (c_int, [u32, c_char_p]),
            "seccomp_syscall_resolve_num_arch": (ptr, [u32, c_int]),
            "seccomp_version": (ctypes.POINTER(_Version), []),
            "seccomp_api_get": (ctypes.c_uint, []),
        }
        for name, (restype, argtypes) in prototypes.items():
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
        self._free = ctypes.CDLL(None).free
        self._free.argtypes = [ptr]
        version = lib.seccomp_version().contents
        self.version = (version.major, version.minor, version.micro)
        self.api_level: int = lib.seccomp_api_get()
        self.native_arch: int = lib.seccomp_arch_native()

    def arch(self, name: str) -> int:
        """The SCMP_ARCH token of libseccomp's name ("x86_64", "x32"...), 0 if unknown."""
        token: int = self._lib.seccomp_arch_resolve_name(name.encode())
        return token

    def syscall(self, name: str, arch: int | None = None) -> int | None:
        """The syscall number of ``name`` (native arch by default); None if unknown.

        Negative numbers are libseccomp's pseudo-syscalls (a name that exists on
        another architecture of the filter): valid in rules, not in the kernel.
        """
        if arch is None:
            number: int = self._lib.seccomp_syscall_resolve_name(name.encode())
        else:
            number = self._lib.seccomp_syscall_resolve_name_arch(arch, name.encode())
        return None if number == _NR_SCMP_ERROR else number

    def syscall_name(self, number: int, arch: int) -> str | None:
        """The name of syscall ``number`` on ``arch`` (an AUDIT_ARCH value), if known."""
        raw = self._lib.seccomp_syscall_resolve_num_arch(arch, number)
        if not raw:
            return None
        try:
            return ctypes.string_at(raw).decode()
        finally:
            self._free(raw)

    def filter(self, default_action: int) -> Filter:
        ctx = self._lib.seccomp_init(default_action)
        if not ctx:
            raise OSError(0, f"seccomp_init: rejected default action {default_action:#x}")
        return Filter(self._lib, ctx)


class Filter:
    """A ``scmp_filter_ctx``; release it with ``with``."""

    def __init__(self, lib: ctypes.CDLL, ctx: int) -> None:
        self._lib = lib
        self._ctx: int | None = ctx

    def __enter__(self) -> Filter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None

    def _check(self, result: int, operation: str) -> None:
        if result < 0:
            raise OSError(-result, f"{operation}: {os.strerror(-result)}")

    def add_arch(self, token: int) -> None:
        """Add an architecture; one already there (the native one always is) is fine."""
        result = self._lib.seccomp_arch_add(self._ctx, token)
        if result != -17:  # -EEXIST
            self._check(result, "seccomp_arch_add")

    def optimize(self, level: int) -> None:
        """SCMP_FLTATR_CTL_OPTIMIZE: 2 sorts syscalls into a binary tree (runc: > 32 rules)."""
        self._check(self._lib.seccomp_attr_set(self._ctx, _ATTR_CTL_OPTIMIZE, level), "optimize")

    def add_rule(self, action: int, syscall: int, conditions: Sequence[ArgCmp] = ()) -> None:
        array = (ArgCmp * len(conditions))(*conditions) if conditions else None
        result = self._lib.seccomp_rule_add_array(
            self._ctx, action, syscall, len(conditions), array
        )
        self._check(result, "seccomp_rule_add")

    def export_bpf(self) -> bytes:
        """The program as ``struct sock_filter[]`` in host byte order (through a memfd)."""
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            self._check(self._lib.seccomp_export_bpf(self._ctx, fd), "seccomp_export_bpf")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)


@functools.cache
def libseccomp() -> Libseccomp:
    """The host's libseccomp, loaded once (dlopen finds it without running ldconfig)."""
    try:
        lib = Libseccomp(ctypes.CDLL(_SONAME, use_errno=True))
    except OSError as error:
        raise LibseccompUnavailable(
            error.errno or 0,
            f"linux.seccomp needs {_SONAME} (Debian: apt-get install libseccomp2): {error}",
        ) from None
    if lib.version < (2, 5, 0):
        raise LibseccompUnavailable(
            0, f"linux.seccomp needs libseccomp >= 2.5, found {'.'.join(map(str, lib.version))}"
        )
    return lib
