"""OOM events as a file descriptor to wait on: no polling loop.

v1: an eventfd registered on ``memory.oom_control`` through
``cgroup.event_control``; the kernel signals it at each OOM in the cgroup (and
once more when the cgroup is removed).  v2: inotify on ``memory.events``, which
the kernel touches whenever one of its counters moves; ``read`` compares the
``oom_kill`` counter with the last value seen.

The async layer waits with ``anyio.wait_readable(events.fileno())`` and then
calls ``events.read()``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath

from .._errors import CgroupError
from .._syscalls._fds import IN_MODIFY, inotify_add_watch, inotify_init


def oom_kill_count(directory: str, version: int) -> int:
    """The kernel's count of OOM kills in the cgroup (``oom_kill`` line)."""
    name = "memory.oom_control" if version == 1 else "memory.events"
    with open(posixpath.join(directory, name)) as f:
        for line in f:
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    return 0


class OomEvents:
    """OOM notifications of one memory cgroup; ``fileno()`` turns readable on news."""

    def __init__(self, directory: str, version: int) -> None:
        self.directory = directory
        self.version = version
        #: True once the cgroup is gone (v1 signals its removal too)
        self.closed = False
        self._fd = -1
        try:
            self._fd = self._open_v1() if version == 1 else self._open_v2()
            self._seen = oom_kill_count(directory, version)
        except OSError as exc:
            self.close()
            raise CgroupError(
                f"cannot watch OOM events: {exc.strerror or exc}",
                path=directory,
                errno=exc.errno or 0,
                operation="watch",
            ) from exc

    def _open_v1(self) -> int:
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            control = os.open(
                posixpath.join(self.directory, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC
            )
            try:
                path = posixpath.join(self.directory, "cgroup.event_control")
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, f"{efd} {control}".encode())
                finally:
                    os.close(fd)
            finally:
                os.close(control)  # the kernel holds its own reference now
        except OSError:
            os.close(efd)
            raise
        return efd

    def _open_v2(self) -> int:
        fd = inotify_init()
        try:
            inotify_add_watch(fd, posixpath.join(self.directory, "memory.events"), IN_MODIFY)
        except OSError:
            os.close(fd)
            raise
        return fd

    def fileno(self) -> int:
        return self._fd

    def read(self) -> int:
        """Drain the fd; the number of OOM kills since the last read (0 if none)."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._fd, 4096)
        try:
            count = oom_kill_count(self.directory, self.version)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENODEV):
                self.closed = True
                return 0
            raise
        if self.version == 1 and not os.path.exists(
            posixpath.join(self.directory, "cgroup.event_control")
        ):
            self.closed = True
        new, self._seen = count - self._seen, count
        return max(new, 0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> OomEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
