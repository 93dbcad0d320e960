"""What the running kernel lacks, said with the Linux release that has it.

Nothing is probed up front (a probe would cost every container, and a release
number says little where distributions backport): the kernel's refusal is the
detection.  ENOSYS from a syscall, EINVAL from a flag it does not know yet, or
from an idmapped mount of a filesystem that cannot have one, becomes
"openat2 needs Linux 5.6 (this kernel is 5.4.0-150-generic)".  The table is
docs/config.md's "Kernel requirements".
"""

from __future__ import annotations

import errno
import os

#: (operation, errno) -> (first Linux release that has it, what it is)
_SYSCALLS: dict[tuple[str, int], tuple[tuple[int, int], str]] = {
    ("open_tree", errno.ENOSYS): ((5, 2), "open_tree"),
    ("move_mount", errno.ENOSYS): ((5, 2), "move_mount"),
    ("fsopen", errno.ENOSYS): ((5, 2), "fsopen"),
    ("fsconfig", errno.ENOSYS): ((5, 2), "fsconfig"),
    ("fsmount", errno.ENOSYS): ((5, 2), "fsmount"),
    ("pidfd_send_signal", errno.ENOSYS): ((5, 1), "pidfd_send_signal"),
    ("openat2", errno.ENOSYS): ((5, 6), "openat2"),
    ("close_range", errno.ENOSYS): ((5, 9), "close_range"),
    ("close_range", errno.EINVAL): ((5, 11), "close_range(CLOSE_RANGE_CLOEXEC)"),
    ("mount_setattr", errno.ENOSYS): ((5, 12), "mount_setattr"),
}

#: filesystem type -> first Linux release whose idmapped mounts support it
IDMAP_FILESYSTEMS: dict[str, tuple[int, int]] = {
    "ext4": (5, 12),
    "xfs": (5, 12),
    "vfat": (5, 12),
    "btrfs": (5, 15),
    "tmpfs": (6, 3),
}


def release() -> tuple[int, int]:
    """(major, minor) of the running kernel."""
    numbers = []
    for part in os.uname().release.split(".")[:2]:  # "6.1.0-57-amd64", "5.15.0-91-generic"
        digits = part[: len(part) - len(part.lstrip("0123456789"))]
        numbers.append(int(digits or 0))
    return numbers[0], numbers[1] if len(numbers) > 1 else 0


def _version(version: tuple[int, int]) -> str:
    return f"Linux {version[0]}.{version[1]}"


def needs(what: str, version: tuple[int, int]) -> str:
    """The sentence every kernel-age error ends with."""
    return f"{what} needs {_version(version)} (this kernel is {os.uname().release})"


def syscall_hint(operation: str, error: int) -> str | None:
    """Why ``operation`` failed with ``error`` if the kernel's age explains it."""
    known = _SYSCALLS.get((operation, error))
    if known is None:
        return None
    version, what = known
    if release() < version:
        return needs(what, version)
    if error == errno.ENOSYS:  # the kernel has it: something hides it
        return f"{what} is in {_version(version)} and up: a seccomp filter refuses it?"
    return None


def idmap_hint(fstypes: list[str]) -> str | None:
    """Why an idmapped mount over these filesystems (the source's and below) was refused."""
    for fstype in fstypes:
        version = IDMAP_FILESYSTEMS.get(fstype)
        if version is not None and release() < version:
            return needs(f"an idmapped mount of {fstype}", version)
    unknown = sorted({fstype for fstype in fstypes if fstype not in IDMAP_FILESYSTEMS})
    if unknown:
        names = " or ".join(unknown)
        return f"{names} may not support idmapped mounts (this kernel is {os.uname().release})"
    return None
