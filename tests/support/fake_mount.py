"""A recording stand-in for mount(2) and statvfs, to unit-test the flag arithmetic
of ``asyncinit.rootfs`` without root.  The real-kernel tests stay the truth: this
only pins which calls the steps make, with which flags, in which order.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import pytest

from asyncinit._syscalls._mount import MS_BIND, MS_REMOUNT

#: Where a mounted target appears in the recorded calls (see ``FakeMounts.reopened``).
TARGET = "/proc/self/fd/TARGET"


class MountCall(NamedTuple):
    source: str | None
    target: str
    fstype: str | None
    flags: int
    data: str | None


class FakeMounts:
    """Records every mount(2); refuses the ones ``refuse`` says (EPERM, as the kernel
    does for a locked flag); ``statvfs`` reports ``st_flags`` for every path."""

    def __init__(self) -> None:
        self.calls: list[MountCall] = []
        self.st_flags = 0
        self.refuse: Callable[[MountCall], bool] = lambda call: False

    def mount(
        self,
        source: str | None,
        target: str,
        fstype: str | None,
        flags: int = 0,
        data: str | None = None,
        *,
        display_target: str | None = None,
    ) -> None:
        call = MountCall(source, target, fstype, flags, data)
        self.calls.append(call)
        if self.refuse(call):
            raise OSError(errno.EPERM, "mount: refused", display_target or target)

    def statvfs(self, path: str) -> os.statvfs_result:
        return os.statvfs_result((4096, 4096, 0, 0, 0, 0, 0, 0, self.st_flags, 255))

    @contextmanager
    def reopened(self, rootfd: int, destination: str) -> Iterator[str]:
        yield TARGET

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeMounts:
        """Stand in for mount(2), statvfs and reopening a destination in the rootfs steps."""
        from asyncinit.rootfs import _mount, _remount

        for module in (_mount, _remount):
            monkeypatch.setattr(module, "mount", self.mount)
        monkeypatch.setattr(_mount, "reopened", self.reopened)
        monkeypatch.setattr(os, "statvfs", self.statvfs)  # what _remount.current_flags reads
        return self


def remount(flags: int) -> int:
    """The flags of a bind remount that sets ``flags``."""
    return MS_BIND | MS_REMOUNT | flags
