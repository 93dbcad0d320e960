"""The init's one worker thread, which runs the blocking rootfs and devices steps.

Why not ``anyio.to_thread.run_sync``: its worker machinery (a queue, events, a
thread pool's bookkeeping, then a join when the loop closes) costs a freshly
forked init about 0.9 ms of CPU and 100 copied pages, every container, for the
two or three hops a start makes.  One bare thread and a pipe to wake the event
loop do the same job, on asyncio and trio alike.

A single thread also serializes the steps, which must never overlap:
pivot_root, chdir and umask act on the fs_struct every thread shares.
"""

from __future__ import annotations

import _thread
import errno
import os
from collections.abc import Callable
from typing import Any, TypeVar, TypeVarTuple

import anyio

from .._syscalls import with_operation

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class StepsThread:
    """Started on first use; it then waits for work until execve (or exit) ends it."""

    def __init__(self) -> None:
        self._started = False
        self._work_ready = _thread.allocate_lock()
        self._work_ready.acquire()
        self._work: Callable[[], Any] | None = None
        self._outcome: tuple[bool, Any] = (False, None)
        self._done_r, self._done_w = os.pipe2(os.O_CLOEXEC)
        self._busy = anyio.Lock()

    def _serve(self) -> None:
        while True:
            self._work_ready.acquire()
            work, self._work = self._work, None
            assert work is not None
            try:
                self._outcome = (True, work())
            except BaseException as exc:  # handed to the awaiting task, which re-raises it
                self._outcome = (False, exc)
            os.write(self._done_w, b".")

    async def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """``fn(*args)`` in the thread.  Never abandoned: a cancellation waits for it."""
        async with self._busy:
            self._work = lambda: fn(*args)
            if not self._started:
                _start_thread(self._serve)
                self._started = True
            self._work_ready.release()
            with anyio.CancelScope(shield=True):
                await anyio.wait_readable(self._done_r)
            os.read(self._done_r, 1)
            succeeded, value = self._outcome
            self._outcome = (False, None)
        if not succeeded:
            raise value
        return value  # type: ignore[no-any-return]


def _start_thread(target: Callable[[], None]) -> None:
    """Start ``target`` in a thread; failing, an OSError that says why.

    CPython turns pthread_create's error into RuntimeError("can't start new thread")
    and drops the errno.  With default attributes its one failure is EAGAIN: a pids
    cgroup or RLIMIT_NPROC limit reached (or no memory for the stack).
    """
    try:
        _thread.start_new_thread(target, ())
    except RuntimeError as exc:
        error = OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        raise with_operation(error, "pthread_create") from exc
